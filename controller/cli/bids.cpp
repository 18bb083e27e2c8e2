// `morphctl bids submit|amend|cancel|list`: a tenant's standing bids for increments above a VM's baseline.
#include "common/config.h"
#include "common/msg/socket.h"
#include "controller/cli/command.h"
#include "controller/cli/records.h"

namespace morph::cli {

namespace {

struct BidArgs {
  std::string account, vm, resource = "cpu", tier = "improve", expires_in;
  uint64_t bid = 0;
  int64_t quantity = 0, min_quantity = 0, max_price = 0;
  bool json = false;
  CLI::Option *quantity_given = nullptr, *min_quantity_given = nullptr, *max_price_given = nullptr;  // amend
};
constexpr auto kBid = record_in<&v1::ApiReply::body_as_BidReply, &v1::BidReply::bid, bid_json>;

// --expires-in as the absolute time the controller takes (0: until cancelled).
uint64_t expiry(const std::string& expires_in) {
  if (expires_in.empty()) return 0;
  auto d = config::parse_duration(expires_in);
  if (!d) fail(kUsage, "--expires-in: " + std::string(d.error().what()));
  return msg::now_ns() + static_cast<uint64_t>(d->count());
}

// Only the fields given change; the controller keeps the rest.
flatbuffers::Offset<void> amend_body(Builder& b, const BidArgs& a) {
  v1::BidAmendBuilder ab(b);
  ab.add_bid_id(a.bid);
  if (a.quantity_given->count()) ab.add_quantity(a.quantity);
  if (a.min_quantity_given->count()) ab.add_min_quantity(a.min_quantity);
  if (a.max_price_given->count()) ab.add_max_price_ucredits(a.max_price);
  return ab.Finish().Union();
}

}  // namespace

void add_bids(Commands& c) {
  auto* bids = c.noun("bids", "bids for resource increments");

  auto submit = verb<BidArgs>(bids, "submit", "bid for an increment above a VM's baseline");
  CLI::App* cmd = submit.cmd;
  BidArgs& s = *submit.args;
  cmd->add_option("--account", s.account, "account that pays")->required();
  cmd->add_option("--vm", s.vm, "VM uuid")->required();
  cmd->add_option("--quantity", s.quantity, "increment, in the resource's unit (cpu: millicores)")->required();
  cmd->add_option("--max-price", s.max_price, "micro-credits per unit per second")->required();
  cmd->add_option("--min-quantity", s.min_quantity, "smallest partial fill accepted (default: all or nothing)");
  cmd->add_option("--resource", s.resource, market_resource_names())->capture_default_str();
  cmd->add_option("--tier", s.tier, "sla, improve, speculative")->capture_default_str();
  cmd->add_option("--expires-in", s.expires_in, "duration (\"10m\"); default until cancelled");
  const std::vector<std::string> examples = {
      "morphctl bids submit --account acme --vm 0f1e2d3c-... --quantity 500 --max-price 20 --tier improve"};
  c.on(submit, examples, [a = submit.args](Session& session) {
    // Checked before anything is sent (exit 2 naming the flag).
    const v1::Resource resource = resource_arg(a->resource);
    const v1::BidTier tier = tier_arg(a->tier);
    const uint64_t expires = expiry(a->expires_in);
    const auto& reply = session.client.call(v1::ApiRequestBody::BidSubmit, [&](Builder& b) {
      return v1::CreateBidSubmitDirect(b, a->account.c_str(), a->vm.c_str(), resource, a->quantity, a->min_quantity,
                                       a->max_price, tier, expires)
          .Union();
    });
    return print_reply(session, reply, kBid, a->json);
  });

  auto amend = verb<BidArgs>(bids, "amend", "change a live bid (fields not given keep their value)");
  BidArgs& m = *amend.args;
  amend.cmd->add_option("bid", m.bid, "bid id")->required();
  m.quantity_given = amend.cmd->add_option("--quantity", m.quantity, "new quantity");
  m.min_quantity_given = amend.cmd->add_option("--min-quantity", m.min_quantity, "new minimum fill");
  m.max_price_given = amend.cmd->add_option("--max-price", m.max_price, "new max price");
  c.request(
      amend, {"morphctl bids amend 17 --max-price 30"}, v1::ApiRequestBody::BidAmend,
      [a = amend.args](Builder& b) { return amend_body(b, *a); }, kBid);

  auto cancel = verb<BidArgs>(bids, "cancel", "cancel a bid (its allocation ends at the next tick)");
  cancel.cmd->add_option("bid", cancel.args->bid, "bid id")->required();
  c.request(
      cancel, {"morphctl bids cancel 17"}, v1::ApiRequestBody::BidCancel,
      [a = cancel.args](Builder& b) { return v1::CreateBidCancel(b, a->bid).Union(); }, kBid);

  auto list = verb<BidArgs>(bids, "list", "live bids (rescue bids marked)");
  list.cmd->add_option("--account", list.args->account, "only this account");
  list.cmd->add_option("--vm", list.args->vm, "only this VM");
  c.request(
      list, {"morphctl bids list --account acme", "morphctl bids list --vm 0f1e2d3c-... --json"},
      v1::ApiRequestBody::BidList,
      [a = list.args](Builder& b) { return v1::CreateBidListDirect(b, a->account.c_str(), a->vm.c_str()).Union(); },
      rows_in<&v1::ApiReply::body_as_BidListReply, &v1::BidListReply::bids, bid_json>);
}

}  // namespace morph::cli
