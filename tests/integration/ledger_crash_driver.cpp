// ledger_crash_driver: a real process running the market + SQLite ledger tick loop with live random bids
// and fast ticks, to be killed with SIGKILL at any instant by ledger_crash_test. On start it recovers from
// the ledger and prints "recovered <last tick> <digest>"; after every commit it prints "committed <tick>
// <digest>" (only once the ledger has returned, so every printed tick must survive a kill). The digest is of
// the allocations: as recovered, and as the tick committed them, so a restart must print the last one's.
//
//   ledger_crash_driver --db PATH --until TICK [--seed N] [--sleep-us N]
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "controller/ledger/exchange.h"
#include "controller/ledger/sqlite_ledger.h"
#include "tests/support/flags.h"

using namespace morph;
using namespace morph::market;

namespace {

constexpr int kAccounts = 6, kHosts = 4, kVmsPerHost = 5;

MarketConfig config() {
  MarketConfig c;
  for (Resource r : kMarketResources) c.reserve[static_cast<size_t>(r)] = {5, 2, 1};
  c.tick_ms = 1000;
  c.hold_ticks = 3;
  c.notice_ticks = 2;
  c.hysteresis_pct = 5;
  return c;
}

std::string account(int i) {
  return "acct" + std::to_string(i);
}

void say(const std::string& line) {
  std::string l = line + "\n";
  // write(2) straight to the pipe: nothing buffered in this process when SIGKILL lands.
  if (::write(STDOUT_FILENO, l.data(), l.size()) < 0) std::exit(3);
}

// Every field of every allocation, in bid order: two digests agree only if the allocations do.
std::string digest(std::vector<Allocation> held) {
  std::sort(held.begin(), held.end(), [](auto& x, auto& y) { return x.bid_id < y.bid_id; });
  std::string text;
  for (const Allocation& a : held)
    text += std::to_string(a.bid_id) + " " + a.account + " " + a.vm + " " + a.host + " " +
            std::string(resource_name(a.resource)) + " " + std::string(tier_name(a.tier)) + " " +
            std::to_string(a.quantity) + " " + std::to_string(a.price) + " " + std::to_string(a.since) + " " +
            std::to_string(a.notice_until) + "\n";
  return std::to_string(held.size()) + ":" + std::to_string(std::hash<std::string>{}(text));
}

int fail(const Error& e) {
  std::fprintf(stderr, "ledger_crash_driver: %s\n", e.describe().c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  const morph::test::Flags flags(argc, argv, {"--db", "--until", "--seed", "--sleep-us"});
  const std::string db = flags.text("--db");
  const auto until = static_cast<Tick>(flags.number("--until", 0));
  const auto seed = static_cast<uint64_t>(flags.number("--seed", 1));
  const long sleep_us = static_cast<long>(flags.number("--sleep-us", 0));
  if (db.empty() || until == 0) {
    std::fprintf(stderr, "usage: ledger_crash_driver --db PATH --until TICK [--seed N] [--sleep-us N]\n");
    return 64;
  }
  auto opened = ledger::SqliteLedger::open(db);
  if (!opened.ok()) return fail(opened.error());
  ledger::SqliteLedger& led = **opened;
  Market market(config());
  ledger::Exchange ex(market, led);
  if (auto st = ex.recover(); !st.ok()) return fail(st.error());
  std::vector<Allocation> recovered;
  for (const auto& [bid, a] : market.allocations()) recovered.push_back(a);
  // Accounts are created once; a kill in between leaves some to create on the next start.
  for (int a = 0; a < kAccounts; ++a)
    if (!market.balance(account(a)).ok())
      if (auto st = ex.open_account({account(a), 200'000 + 100'000 * a}); !st.ok()) return fail(st.error());
  for (int h = 0; h < kHosts; ++h) {
    HostSpec hs{"h" + std::to_string(h), {4000, 8192, 2000, 200000, 1000, 1000, 3}};
    if (auto st = market.upsert_host(hs); !st.ok()) return fail(st.error());
    for (int v = 0; v < kVmsPerHost; ++v) {
      VmSpec vm{hs.id + "-vm" + std::to_string(v),
                account((h * kVmsPerHost + v) % kAccounts),
                hs.id,
                {200, 512, 100, 10000, 50, 50, 0},
                {1500, 3072, 800, 80000, 400, 400, 1}};
      if (auto st = market.upsert_vm(vm); !st.ok()) return fail(st.error());
    }
  }
  say("recovered " + std::to_string(market.last_tick()) + " " + digest(std::move(recovered)));

  std::mt19937_64 rng(seed ^ (market.last_tick() * 0x9e3779b97f4a7c15ULL));
  auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  static const char* tiers[] = {"sla", "improve", "speculative"};
  while (market.last_tick() < until) {
    for (int i = pick(0, 4); i > 0; --i) {
      int h = static_cast<int>(pick(0, kHosts - 1)), v = static_cast<int>(pick(0, kVmsPerHost - 1));
      std::string vm = "h" + std::to_string(h) + "-vm" + std::to_string(v);
      int64_t q = pick(1, 300);
      BidRequest req{account((h * kVmsPerHost + v) % kAccounts),
                     vm,
                     kMarketResources[static_cast<size_t>(pick(0, 6))],
                     tiers[pick(0, 2)],
                     q,
                     pick(0, 1) ? 0 : pick(1, q),
                     pick(5, 40),
                     0};
      if (pick(0, 3) == 0) req.expiry = market.last_tick() + static_cast<Tick>(pick(1, 20));
      auto r = ex.submit(req);
      if (!r.ok() && r.error().code() == Errc::io) return fail(r.error());  // refusals are expected
    }
    if (pick(0, 2) == 0) {
      int a = static_cast<int>(pick(0, kAccounts - 1));
      auto live = ex.list(account(a));
      if (!live.empty()) {
        auto r = ex.cancel(account(a), live[static_cast<size_t>(pick(0, static_cast<int64_t>(live.size()) - 1))].id);
        if (!r.ok()) return fail(r.error());
      }
    }
    if (pick(0, 9) == 0)
      if (auto st = ex.deposit(account(static_cast<int>(pick(0, kAccounts - 1))), pick(1000, 50'000)); !st.ok())
        return fail(st.error());
    auto o = ex.run_tick();
    if (!o.ok()) return fail(o.error());
    say("committed " + std::to_string(o->tick) + " " + digest(o->allocations));
    if (sleep_us > 0) ::usleep(static_cast<useconds_t>(sleep_us));
  }
  return 0;
}
