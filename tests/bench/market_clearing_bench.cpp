// market_clearing_bench: wall time of one clearing tick (Market::clear, the whole market: every host and
// resource, funds check included) against market size, from 1,000 hosts x 20 VMs x 5 bids up to 10x that.
// Prints one row per size: median and p95 of `clear`, and of `apply`, over steady-state ticks with churn.
//
//   market_clearing_bench [--scales 1,2,5,10] [--ticks 15]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "controller/market/market.h"
#include "tests/support/flags.h"
#include "tests/support/measure.h"

using namespace morph::market;
using morph::kMarketResourceCount;
using morph::kMarketResources;
using morph::Resource;
using morph::test::ms_since;
using morph::test::percentile;
using morph::test::thread_cpu_ms;
using Clock = std::chrono::steady_clock;

namespace {

void run(int scale, int ticks) {
  const int hosts = 1000 * scale, vms_per_host = 20, bids_per_vm = 5, accounts = 500;
  MarketConfig cfg;
  for (Resource r : kMarketResources) cfg.reserve[static_cast<size_t>(r)] = {5, 2, 1};
  Market m(cfg);
  std::mt19937_64 rng(42 + scale);
  auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  for (int a = 0; a < accounts; ++a) (void)m.add_account({"acct" + std::to_string(a), int64_t{1} << 50});
  static const char* tiers[] = {"sla", "improve", "speculative"};
  std::vector<BidRequest> reqs;
  auto t0 = Clock::now();
  long submitted = 0;
  for (int h = 0; h < hosts; ++h) {
    HostSpec hs{"h" + std::to_string(h), {64000, 262144, 50000, 2000000, 40000, 40000, 8}};
    (void)m.upsert_host(hs);
    for (int v = 0; v < vms_per_host; ++v) {
      VmSpec vm{hs.id + "v" + std::to_string(v),
                "acct" + std::to_string(pick(0, accounts - 1)),
                hs.id,
                {1000, 4096, 500, 20000, 500, 500, 0},
                {8000, 32768, 5000, 200000, 5000, 5000, 1}};
      (void)m.upsert_vm(vm);
      for (int b = 0; b < bids_per_vm; ++b) {
        // Every resource, several bids per VM on some: books of ~14 bids each, demand > supply on most.
        Resource r = kMarketResources[static_cast<size_t>(b < 5 ? (v + b) % kMarketResourceCount : pick(0, 6))];
        int64_t room = at(vm.ceiling, r) - at(vm.baseline, r);
        int64_t q = std::max<int64_t>(1, pick(1, std::max<int64_t>(1, room / 3)));
        BidRequest req{vm.owner, vm.id, r, tiers[pick(0, 2)], q, pick(0, 1) ? 0 : pick(1, q), pick(5, 500), 0};
        auto bid = m.check_submit(req, 0);
        if (bid.ok()) {
          m.put_bid(*bid);
          ++submitted;
        }
        reqs.push_back(req);
      }
    }
  }
  double setup_ms = ms_since(t0);
  std::vector<double> clear_ms, clear_cpu, apply_ms;
  size_t allocs = 0;
  for (int t = 0; t < ticks; ++t) {
    auto c0 = Clock::now();
    double k0 = thread_cpu_ms();
    TickOutcome o = m.clear(m.last_tick() + 1);
    clear_cpu.push_back(thread_cpu_ms() - k0);
    clear_ms.push_back(ms_since(c0));
    auto a0 = Clock::now();
    m.apply(o);
    apply_ms.push_back(ms_since(a0));
    allocs = o.allocations.size();
  }
  std::printf("%6d %9d %9ld %9zu %10.1f %10.2f %10.2f %10.2f %10.2f\n", scale, hosts, submitted, allocs, setup_ms,
              percentile(clear_cpu, 0.5), percentile(clear_ms, 0.5), percentile(clear_ms, 0.95),
              percentile(apply_ms, 0.5));
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  const morph::test::Flags flags(argc, argv, {"--scales", "--ticks"});
  std::vector<int> scales;
  std::stringstream list(flags.text("--scales", "1,2,5,10"));
  for (std::string s; std::getline(list, s, ',');) scales.push_back(std::atoi(s.c_str()));
  const int ticks = static_cast<int>(flags.number("--ticks", 15));
  std::printf(
      "# Market::clear per tick; 20 VMs/host, 5 bids/VM; ms; clear_cpu = median thread CPU time, others wall\n");
  std::printf("%6s %9s %9s %9s %10s %10s %10s %10s %10s\n", "scale", "hosts", "bids", "allocs", "setup", "clear_cpu",
              "clear_p50", "clear_p95", "apply_p50");
  for (int s : scales) run(s, ticks);
}
