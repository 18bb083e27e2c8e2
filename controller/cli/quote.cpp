// `morphctl quote`: what an increment would cost on a VM's host now, the recent prices of its book, and (a
// --vm quote of cpu) the increment its demand forecast says it is likely to need over the next hour.
#include "controller/cli/command.h"
#include "controller/cli/records.h"

namespace morph::cli {

namespace {

struct QuoteArgs {
  std::string vm, host, resource = "cpu", tier = "improve";
  int64_t quantity = 0;
  uint32_t history = 10;
  bool json = false;
};

int run_quote(Session& s, const QuoteArgs& a) {
  // Checked before anything is sent (exit 2 naming the flag).
  const v1::Resource resource = resource_arg(a.resource);
  const v1::BidTier tier = tier_arg(a.tier);
  if (a.vm.empty() && a.host.empty()) fail(kUsage, "quote needs --vm or --host");
  const auto& reply = s.client.call(v1::ApiRequestBody::QuoteQuery, [&](Builder& b) {
    return v1::CreateQuoteQueryDirect(b, a.vm.c_str(), a.host.c_str(), resource, tier, a.quantity, a.history).Union();
  });
  const v1::QuoteReply& q = expect(reply.body_as_QuoteReply());
  json out = quote_json(q), hist = quote_history_json(q), forecast = quote_forecast_json(q);
  if (a.json) {
    out["history"] = hist;
    if (!forecast.is_null()) out["forecast"] = forecast;
    print(out, true, s.out);
    return kOk;
  }
  print(out, false, s.out);
  s.out << "recent prices:";
  for (auto& h : hist) s.out << " " << h["price_ucredits"].dump();
  s.out << (hist.empty() ? " (none yet)\n" : "\n");
  if (q.available() < q.quantity())
    s.out << "only " << q.available() << " of " << q.quantity() << " could be had now\n";
  if (!forecast.is_null()) {
    if (forecast["ready"].get<bool>())
      s.out << "next " << forecast["horizon_s"].get<uint32_t>() / 60 << " min (forecast): likely +"
            << forecast["increment_mc"].get<int64_t>() << " mc above the " << forecast["baseline_mc"].get<int64_t>()
            << " mc baseline (p90 peak " << forecast["p90_peak_mc"].get<int64_t>() << " mc, p50 "
            << forecast["p50_peak_mc"].get<int64_t>() << "), about "
            << forecast["cost_per_hour_ucredits"].get<int64_t>() << " ucredits/h at the recent "
            << forecast["recent_price_ucredits"].get<int64_t>() << " per mc-second\n";
    else
      s.out << "forecast: " << forecast["note"].get<std::string>() << "\n";
  }
  return kOk;
}

}  // namespace

void add_quote(Commands& c) {
  auto quote = verb<QuoteArgs>(&c.app(), "quote", "what an increment would cost now, and recent prices");
  QuoteArgs& a = *quote.args;
  quote.cmd->add_option("--vm", a.vm, "VM uuid (its host's book)");
  quote.cmd->add_option("--host", a.host, "host (instead of --vm)");
  quote.cmd->add_option("--quantity", a.quantity, "increment wanted")->required();
  quote.cmd->add_option("--resource", a.resource, market_resource_names())->capture_default_str();
  quote.cmd->add_option("--tier", a.tier, "sla, improve, speculative")->capture_default_str();
  quote.cmd->add_option("--history", a.history, "recent ticks of price history")->capture_default_str();
  const std::vector<std::string> examples = {"morphctl quote --vm 0f1e2d3c-... --quantity 500",
                                             "morphctl quote --host host-a --quantity 500 --tier sla --json"};
  c.on(quote, examples, [a = quote.args](Session& s) { return run_quote(s, *a); });
}

}  // namespace morph::cli
