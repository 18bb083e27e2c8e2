// `morphctl ledger show`: charges, failures and deposits from the controller's ledger, newest page first.
#include "controller/cli/command.h"
#include "controller/cli/records.h"

namespace morph::cli {

void add_ledger(Commands& c) {
  struct LedgerArgs {
    std::string account, kind;
    uint64_t since_tick = 0, before = 0;
    uint32_t limit = 100;
    bool json = false;
  };
  auto show = verb<LedgerArgs>(c.noun("ledger", "charges, failures and deposits"), "show",
                               "ledger entries from the controller's ledger database, newest page first");
  LedgerArgs& a = *show.args;
  show.cmd->add_option("--account", a.account, "only this account (a tenant always sees only its own)");
  show.cmd->add_option("--since-tick", a.since_tick, "from this tick on");
  show.cmd->add_option("--kind", a.kind, "only this kind of entry")
      ->check(CLI::IsMember({"charge", "deposit", "failure"}));
  show.cmd->add_option("--before", a.before, "page back: only entries older than this entry id");
  show.cmd->add_option("--limit", a.limit, "at most this many (newest)")
      ->capture_default_str()
      ->check(CLI::Range(1u, 10000u));
  const std::vector<std::string> examples = {"morphctl ledger show --account acme --since-tick 100",
                                             "morphctl ledger show --limit 20 --json"};
  c.on(show, examples, [a = show.args](Session& s) {
    const auto& reply = s.client.call(v1::ApiRequestBody::LedgerQuery, [&](Builder& b) {
      return v1::CreateLedgerQueryDirect(b, a->account.c_str(), a->since_tick, a->limit,
                                         a->kind.empty() ? nullptr : a->kind.c_str(), a->before)
          .Union();
    });
    print_reply(s, reply, rows_in<&v1::ApiReply::body_as_LedgerReply, &v1::LedgerReply::entries, ledger_entry_json>,
                a->json);
    // The next page, on stderr so stdout stays the rows.
    if (const auto* r = reply.body_as_LedgerReply(); r && r->next_before())
      s.err << "older entries: --before " << r->next_before() << "\n";
    return kOk;
  });
}

}  // namespace morph::cli
