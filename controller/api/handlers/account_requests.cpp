// Accounts: create and deposit (admins), get (the account's own caller), list (what the caller sees).
#include <spdlog/spdlog.h>

#include "common/msg/wire.h"
#include "controller/api/handlers/market_requests.h"

namespace morph::controller {

void register_account_requests(MarketRequests& r, MarketParts p) {
  using Request = MarketRequests::Request;
  // After a deposit, its journal entry and whether it was a retry answered from the first one.
  auto account_reply = [p](flatbuffers::FlatBufferBuilder& fbb, const std::string& id,
                           const ledger::CreditReceipt& deposit = {}) {
    return ReplyBody{
        v1::ApiReplyBody::AccountReply,
        v1::CreateAccountReply(fbb, p.views.account_info(fbb, id), deposit.entry, deposit.replayed).Union()};
  };

  r.add(v1::ApiRequestBody::AccountCreate, MarketRequests::admin("creating an account"),
        [p, account_reply](const Request& q) -> Result<ReplyBody> {
          auto* b = q.body.body_as_AccountCreate();
          std::string id(msg::sv(b->account()));
          if (!msg::valid_name(id))
            return Error(Errc::invalid_argument,
                         "account name '" + id + "' is not valid (letters, digits, '-', '_', '.')");
          const std::string display(msg::sv(b->display_name()));
          const uint64_t created = p.state.clock().wall_ns();
          MORPH_TRY(p.state.exchange().open_account({id, 0}, display, created));
          p.state.add_account(id, {display, created});
          p.fleet.feed_all();  // its VMs can be bid for at once, not only after the next tick
          spdlog::info("account {} created by {}", id, q.access.name().empty() ? "local admin" : q.access.name());
          return account_reply(q.fbb, id);
        });

  r.add(v1::ApiRequestBody::AccountGet, MarketRequests::owner([](const v1::ApiRequest& q) {
          return Result<std::optional<std::string>>(std::string(msg::sv(q.body_as_AccountGet()->account())));
        }),
        [p, account_reply](const Request& q) -> Result<ReplyBody> {
          std::string id(msg::sv(q.body.body_as_AccountGet()->account()));
          if (!p.state.has_account(id)) return Error(Errc::not_found, "unknown account " + id);
          return account_reply(q.fbb, id);
        });

  r.add(v1::ApiRequestBody::AccountList, MarketRequests::anyone(), [p](const Request& q) -> Result<ReplyBody> {
    std::vector<flatbuffers::Offset<v1::AccountInfo>> v;
    for (auto& [id, m] : p.state.accounts())
      if (q.access.may_act_on(id)) v.push_back(p.views.account_info(q.fbb, id));
    return ReplyBody{v1::ApiReplyBody::AccountListReply, v1::CreateAccountListReplyDirect(q.fbb, &v).Union()};
  });

  r.add(v1::ApiRequestBody::AccountDeposit, MarketRequests::admin("depositing"),
        [p, account_reply](const Request& q) -> Result<ReplyBody> {
          auto* b = q.body.body_as_AccountDeposit();
          std::string id(msg::sv(b->account()));
          if (b->amount_ucredits() <= 0) return Error(Errc::invalid_argument, "deposit amount must be positive");
          const std::string key(msg::sv(b->idempotency_key()));
          MORPH_TRY_ASSIGN(auto receipt, p.state.exchange().deposit(id, b->amount_ucredits(),
                                                                    std::string(msg::sv(b->reference())), key));
          if (receipt.replayed)
            spdlog::info(
                "account {} deposit of {} retried with idempotency key {}: answered from ledger entry {}, not "
                "credited again",
                id, receipt.amount, key, receipt.entry);
          return account_reply(q.fbb, id, receipt);
        });
}

}  // namespace morph::controller
