#include "controller/api/handlers/market_requests.h"

#include <spdlog/spdlog.h>

#include <cstdlib>

namespace morph::controller {

std::optional<std::string> Access::confined_to() const {
  if (admin()) return std::nullopt;
  return caller_.account;
}

Error Access::deny(const std::string& account) const {
  return Error(Errc::permission_denied,
               (caller_.name.empty() ? std::string("caller") : caller_.name) + " may not act on account " + account);
}

MarketRequests::MarketRequests(MarketParts parts) : parts_(parts) {
  register_account_requests(*this, parts_);
  register_bid_requests(*this, parts_);
  register_market_queries(*this, parts_);
  register_vm_requests(*this, parts_);
}

void MarketRequests::add(v1::ApiRequestBody kind, Rule rule, Handler handler) {
  auto i = static_cast<size_t>(kind);
  if (i >= entries_.size() || entries_[i]) {
    spdlog::critical("api: request kind {} registered twice or out of range", v1::EnumNameApiRequestBody(kind));
    std::abort();
  }
  entries_[i] = Entry{std::move(rule), std::move(handler)};
}

bool MarketRequests::handles(v1::ApiRequestBody kind) const {
  auto i = static_cast<size_t>(kind);
  return i < entries_.size() && entries_[i].has_value();
}

Result<ReplyBody> MarketRequests::handle(const Caller& caller, const v1::ApiRequest& request,
                                         flatbuffers::FlatBufferBuilder& fbb) {
  const auto kind = request.body_type();
  if (!handles(kind))
    return Error(Errc::invalid_argument, std::string(v1::EnumNameApiRequestBody(kind)) + ": not a market request");
  const Entry& e = *entries_[static_cast<size_t>(kind)];
  const Access access(caller);
  switch (e.rule.who) {
    case Rule::Who::admin:
      if (!access.admin()) return Error(Errc::permission_denied, std::string(e.rule.what) + " is for admins only");
      break;
    case Rule::Who::owner: {
      MORPH_TRY_ASSIGN(auto account, e.rule.subject(request));
      if (account && !access.may_act_on(*account)) return access.deny(*account);
      break;
    }
    case Rule::Who::anyone:
      break;
  }
  return e.handler({access, request, fbb});
}

void MarketRequests::snapshot(const Caller& caller, flatbuffers::FlatBufferBuilder& fbb,
                              std::vector<flatbuffers::Offset<v1::PriceInfo>>& prices,
                              std::vector<flatbuffers::Offset<v1::AllocationInfo>>& allocations) const {
  for (auto& [k, h] : parts_.state.prices())
    if (!h.empty()) prices.push_back(parts_.views.price_info(fbb, k, h.back()));
  // What the allocations query shows the caller: a tenant its own account's only.
  for (auto& [id, a] : parts_.state.market().allocations())
    if (caller.may_see(a.account)) allocations.push_back(parts_.views.alloc_info(fbb, a));
}

}  // namespace morph::controller
