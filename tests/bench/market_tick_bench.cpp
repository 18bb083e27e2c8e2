// market_tick_bench: the wall and CPU time of one controller tick, MarketService::tick_once, at fleets of
// 1,000 to 10,000 hosts (hosts x 20 VMs x 5 bids, 500 accounts, as market_clearing_bench), and its parts:
// clear (Market::clear), commit (the ledger's one SQLite transaction, fsync included) and apply
// (Market::apply), each read per tick from the controller's morph_market_clear_seconds /
// morph_ledger_commit_seconds histograms and morph_market_clearing_seconds (clear + commit + apply); "book" is
// what is left, the service's own per-tick bookkeeping (feeding the inventory, price history, the
// alloc./bid./price. events, shift targets and lease renewals, the log search lines).
//
// A real MarketService over a real SQLite ledger in a fresh directory (WAL, synchronous=FULL as shipped),
// hosts and VMs fed as HostHellos, a ControllerLink that only counts what it is given (events are not
// built). Before every timed tick a fraction of the live bids churns through MarketService::handle as an
// admin would: a third new bids, a third amended (quantity), a third cancelled, so every tick has new,
// changed and ended allocations. The initial bids are written to the ledger before the service opens it
// (one transaction each, synchronous=OFF on that connection only: setup time, not measured); the service
// recovers them. Logging goes to a null sink at info (formatting included, no I/O).
//
// --metrics 0 opens the service without a metrics registry (as a controller never does): no split then, but
// the tick without the registry's per-tick work (the morph_market_bids gauge) shows what that costs.
//
//   market_tick_bench [--hosts 1000,5000,10000 | --sizes BIDS,..] [--ticks 20] [--churn 0.005] [--dir /tmp]
//                     [--metrics 1]
#include <flatbuffers/flatbuffers.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "api_reply_generated.h"
#include "api_request_generated.h"
#include "common/metrics.h"
#include "controller/ledger/sqlite_ledger.h"
#include "controller/market/market.h"
#include "controller/runtime/market_service.h"
#include "host_hello_generated.h"
#include "tests/support/flags.h"
#include "tests/support/http.h"
#include "tests/support/measure.h"

using namespace morph;
using namespace morph::market;
using morph::test::percentile;
using morph::test::rss_mib;
using morph::test::thread_cpu_ms;
using SteadyClock = std::chrono::steady_clock;

namespace {

// Counts what the service hands the messaging layer; builds nothing (the builders lock the service).
struct CountingLink final : controller::ControllerLink {
  long alloc = 0, bid = 0, price = 0, shifts = 0, renewals = 0;
  void publish_event(std::string topic, v1::MarketEventBody, controller::EventBodyBuilder) override {
    if (topic.starts_with("alloc."))
      ++alloc;
    else if (topic.starts_with("bid."))
      ++bid;
    else if (topic.starts_with("price."))
      ++price;
  }
  void send_shift(std::string, msg::ShiftOrder) override { ++shifts; }
  void renew_lease(std::string, msg::LeaseRenewal) override { ++renewals; }
};

constexpr int kVmsPerHost = 20, kBidsPerVm = 5, kAccounts = 500;
const ResourceVector kCapacity{64000, 262144, 50000, 2000000, 40000, 40000, 8};
const ResourceVector kBaseline{1000, 4096, 500, 20000, 500, 500, 0};
const ResourceVector kCeiling{8000, 32768, 5000, 200000, 5000, 5000, 1};

struct Fleet {
  std::vector<std::string> hosts;
  std::vector<std::pair<std::string, std::string>> vms;  // (vm, owner)
};

std::vector<flatbuffers::Offset<v1::ResourceAmount>> amounts(flatbuffers::FlatBufferBuilder& b,
                                                             const ResourceVector& v) {
  std::vector<flatbuffers::Offset<v1::ResourceAmount>> out;
  for (Resource r : kMarketResources) out.push_back(v1::CreateResourceAmount(b, to_wire(r).value(), at(v, r)));
  return out;
}

// A BidSubmit/BidAmend/BidCancel through the service's api; returns the bid id of the reply (0: refused).
template <class F>
uint64_t call(controller::MarketService& s, v1::ApiRequestBody type, F body) {
  flatbuffers::FlatBufferBuilder req;
  auto b = body(req);
  req.Finish(v1::CreateApiRequest(req, 1, type, b, 0));
  auto* r = flatbuffers::GetRoot<v1::ApiRequest>(req.GetBufferPointer());
  flatbuffers::FlatBufferBuilder fbb;
  controller::Caller admin;
  auto rep = s.handle(admin, *r, fbb);
  if (!rep || rep->type != v1::ApiReplyBody::BidReply) return 0;
  fbb.Finish(flatbuffers::Offset<v1::BidReply>(rep->offset.o));
  return flatbuffers::GetRoot<v1::BidReply>(fbb.GetBufferPointer())->bid()->bid_id();
}

bool run(int allocations, int ticks, double churn, const std::string& dir_root, bool with_metrics) {
  const int hosts = std::max(1, allocations / (kVmsPerHost * kBidsPerVm));
  char tmpl[4096];
  std::snprintf(tmpl, sizeof tmpl, "%s/market_tick_bench.XXXXXX", dir_root.c_str());
  if (!mkdtemp(tmpl)) {
    std::fprintf(stderr, "market_tick_bench: cannot make a directory under %s\n", dir_root.c_str());
    return false;
  }
  const std::filesystem::path dir(tmpl);
  const std::string path = (dir / "ledger.db").string();
  std::mt19937_64 rng(42 + static_cast<uint64_t>(allocations));
  auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  static const char* tiers[] = {"sla", "improve", "speculative"};

  MarketConfig mcfg;
  for (Resource r : kMarketResources) mcfg.reserve[static_cast<size_t>(r)] = {5, 2, 1};

  // The fleet and the initial book, written to the ledger as the service would have (one put_bid each).
  Fleet fleet;
  std::vector<BidId> live;
  auto t0 = SteadyClock::now();
  {
    auto led = ledger::SqliteLedger::open(path);
    if (!led) {
      std::fprintf(stderr, "market_tick_bench: %s: %s\n", path.c_str(), led.error().what().c_str());
      return false;
    }
    sqlite3_exec((*led)->handle(), "PRAGMA synchronous=OFF", nullptr, nullptr, nullptr);
    Market m(mcfg);
    for (int a = 0; a < kAccounts; ++a) {
      Account acct{"acct" + std::to_string(a), int64_t{1} << 50};
      (void)(*led)->create_account(acct, "", 1);
      (void)m.add_account(acct);
    }
    for (int h = 0; h < hosts; ++h) {
      HostSpec hs{"h" + std::to_string(h), kCapacity};
      (void)m.upsert_host(hs);
      fleet.hosts.push_back(hs.id);
      for (int v = 0; v < kVmsPerHost; ++v) {
        VmSpec vm{hs.id + "v" + std::to_string(v), "acct" + std::to_string(pick(0, kAccounts - 1)), hs.id, kBaseline,
                  kCeiling};
        (void)m.upsert_vm(vm);
        fleet.vms.push_back({vm.id, vm.owner});
        for (int b = 0; b < kBidsPerVm; ++b) {
          Resource r = kMarketResources[static_cast<size_t>((v + b) % kMarketResourceCount)];
          int64_t room = at(vm.ceiling, r) - at(vm.baseline, r);
          int64_t q = std::max<int64_t>(1, pick(1, std::max<int64_t>(1, room / 3)));
          BidRequest req{vm.owner, vm.id, r, tiers[pick(0, 2)], q, pick(0, 1) ? 0 : pick(1, q), pick(5, 500), 0};
          auto bid = m.check_submit(req, 0);
          if (!bid) continue;
          if (auto st = (*led)->put_bid(*bid); !st) {
            std::fprintf(stderr, "market_tick_bench: put_bid: %s\n", st.error().what().c_str());
            return false;
          }
          m.put_bid(*bid);
          live.push_back(bid->id);
        }
      }
    }
  }
  controller::MarketServiceConfig cfg;
  cfg.ledger_path = path;
  cfg.market = mcfg;
  metrics::Registry reg;
  auto opened = controller::MarketService::open(cfg, with_metrics ? &reg : nullptr);
  if (!opened) {
    std::fprintf(stderr, "market_tick_bench: open: %s\n", opened.error().what().c_str());
    return false;
  }
  auto& svc = **opened;
  // The sums of the controller's histograms, as a scrape would read them (0 without a registry).
  struct Sums {
    double run = 0, clear = 0, commit = 0;
  };
  auto sums = [&] {
    if (!with_metrics) return Sums{};
    const std::string text = reg.render();
    auto sum = [&](const char* name) { return morph::test::metric_value(text, name).value_or(0); };
    return Sums{sum("morph_market_clearing_seconds_sum"), sum("morph_market_clear_seconds_sum"),
                sum("morph_ledger_commit_seconds_sum")};
  };
  CountingLink link;
  svc.attach(&link);
  for (int h = 0; h < hosts; ++h) {
    flatbuffers::FlatBufferBuilder b;
    std::vector<flatbuffers::Offset<v1::VmBaselineInfo>> vms;
    for (int v = 0; v < kVmsPerHost; ++v) {
      auto& [id, owner] = fleet.vms[static_cast<size_t>(h * kVmsPerHost + v)];
      auto base = amounts(b, kBaseline), ceil = amounts(b, kCeiling);
      vms.push_back(
          v1::CreateVmBaselineInfoDirect(b, id.c_str(), id.c_str(), owner.c_str(), "", true, &base, 0, &ceil));
    }
    auto cap = amounts(b, kCapacity);
    b.Finish(v1::CreateHostHelloDirect(b, fleet.hosts[static_cast<size_t>(h)].c_str(), 1, 1, "bench", &cap, &vms, 0));
    svc.on_host_hello(*flatbuffers::GetRoot<v1::HostHello>(b.GetBufferPointer()));
  }
  const double setup_s = std::chrono::duration<double>(SteadyClock::now() - t0).count();
  // Warm-up: the first tick grants everything (and the second settles holds); not timed.
  for (int i = 0; i < 2; ++i)
    if (auto st = svc.tick_once(); !st) {
      std::fprintf(stderr, "market_tick_bench: tick: %s\n", st.error().what().c_str());
      return false;
    }

  std::vector<double> tick_ms, tick_cpu, clear_ms, commit_ms, apply_ms, book_ms;
  long events0 = link.alloc + link.bid, shifts0 = link.shifts, renew0 = link.renewals, alloc0 = link.alloc;
  long churned = 0;
  for (int t = 0; t < ticks; ++t) {
    const int n = std::max(3, static_cast<int>(churn * static_cast<double>(live.size())));
    for (int i = 0; i < n; ++i) {
      const int kind = i % 3;
      if (kind == 0) {  // a new bid on a random VM
        auto& [vm, owner] = fleet.vms[static_cast<size_t>(pick(0, static_cast<int64_t>(fleet.vms.size()) - 1))];
        auto r = kMarketResources[static_cast<size_t>(pick(0, kMarketResourceCount - 1))];
        int64_t q = std::max<int64_t>(1, pick(1, std::max<int64_t>(1, (at(kCeiling, r) - at(kBaseline, r)) / 6)));
        const auto tier = static_cast<v1::BidTier>(pick(0, 2));
        const int64_t price = pick(5, 500);
        auto id = call(svc, v1::ApiRequestBody::BidSubmit, [&](flatbuffers::FlatBufferBuilder& b) {
          return v1::CreateBidSubmitDirect(b, owner.c_str(), vm.c_str(), to_wire(r).value(), q, 0, price, tier).Union();
        });
        if (id) live.push_back(id);
      } else if (!live.empty()) {
        const size_t k = static_cast<size_t>(pick(0, static_cast<int64_t>(live.size()) - 1));
        const BidId id = live[k];
        if (kind == 1) {  // amended: a new quantity (unchanged if it no longer fits: refused)
          const int64_t q = pick(1, 500);
          call(svc, v1::ApiRequestBody::BidAmend, [&](flatbuffers::FlatBufferBuilder& b) {
            v1::BidAmendBuilder ab(b);
            ab.add_bid_id(id);
            ab.add_quantity(q);
            ab.add_min_quantity(1);
            return ab.Finish().Union();
          });
        } else {  // cancelled
          call(svc, v1::ApiRequestBody::BidCancel,
               [&](flatbuffers::FlatBufferBuilder& b) { return v1::CreateBidCancel(b, id).Union(); });
          live[k] = live.back();
          live.pop_back();
        }
      }
      ++churned;
    }
    const Sums s0 = sums();
    const double c0 = thread_cpu_ms();
    const auto w0 = SteadyClock::now();
    if (auto st = svc.tick_once(); !st) {
      std::fprintf(stderr, "market_tick_bench: tick: %s\n", st.error().what().c_str());
      return false;
    }
    const double wall = std::chrono::duration<double, std::milli>(SteadyClock::now() - w0).count();
    tick_cpu.push_back(thread_cpu_ms() - c0);
    tick_ms.push_back(wall);
    const Sums s1 = sums();
    const double run = (s1.run - s0.run) * 1e3, clr = (s1.clear - s0.clear) * 1e3, cmt = (s1.commit - s0.commit) * 1e3;
    clear_ms.push_back(clr);
    commit_ms.push_back(cmt);
    apply_ms.push_back(run - clr - cmt);
    book_ms.push_back(wall - run);
  }
  const double per = static_cast<double>(ticks);
  std::printf(
      "%8zu %6d %8.1f %8.1f %8.1f %8.1f %8.1f %8.1f %8.1f %8.1f %8.2f %8.2f %8.1f %7.0f %7.0f %7.0f %7.0f %7.0f\n",
      live.size(), hosts, setup_s, percentile(tick_ms, 0.5), percentile(tick_ms, 0.99), percentile(tick_cpu, 0.5),
      percentile(clear_ms, 0.5), percentile(commit_ms, 0.5), percentile(commit_ms, 0.99), percentile(apply_ms, 0.5),
      percentile(book_ms, 0.5), percentile(book_ms, 0.99), static_cast<double>(churned) / per,
      static_cast<double>(link.alloc - alloc0) / per, static_cast<double>(link.alloc + link.bid - events0) / per,
      static_cast<double>(link.shifts - shifts0) / per, static_cast<double>(link.renewals - renew0) / per, rss_mib());
  std::fflush(stdout);
  opened->reset();
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return true;
}

std::vector<int> ints(const std::string& s) {
  std::vector<int> out;
  std::stringstream in(s);
  for (std::string x; std::getline(in, x, ',');)
    if (!x.empty()) out.push_back(std::atoi(x.c_str()));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  const morph::test::Flags flags(argc, argv, {"--hosts", "--sizes", "--ticks", "--churn", "--dir", "--metrics"});
  if (!flags.error().empty()) {
    std::fprintf(stderr, "market_tick_bench: %s (--hosts, --sizes, --ticks, --churn, --dir, --metrics)\n",
                 flags.error().c_str());
    return 2;
  }
  std::vector<int> sizes = ints(flags.text("--sizes", "1000,10000,100000"));
  if (!flags.text("--hosts").empty()) {
    sizes = ints(flags.text("--hosts"));
    for (int& n : sizes) n *= kVmsPerHost * kBidsPerVm;
  }
  const int ticks = std::max(1, static_cast<int>(flags.number("--ticks", 20)));
  const double churn = std::atof(flags.text("--churn", "0.005").c_str());
  const std::string dir = flags.text("--dir", "/tmp");
  const bool with_metrics = flags.text("--metrics", "1") != "0";
  auto null_logger = std::make_shared<spdlog::logger>("bench", std::make_shared<spdlog::sinks::null_sink_mt>());
  null_logger->set_level(spdlog::level::info);
  spdlog::set_default_logger(null_logger);
  std::printf(
      "# MarketService::tick_once, %d VMs/host, %d bids/VM, %d accounts, %d timed ticks, churn %.3f of the bids "
      "per tick; ms; load %s\n# tick = tick_once wall, cpu = its thread CPU; its parts: clear = Market::clear, "
      "commit = the ledger's transaction, apply = Market::apply, book = the rest (the service's bookkeeping); per "
      "tick: churned requests, alloc. events, alloc.+bid. events, shift commands, lease renewals; rss = the bench's "
      "MiB after\n",
      kVmsPerHost, kBidsPerVm, kAccounts, ticks, churn, morph::test::loadavg().c_str());
  if (!with_metrics) std::printf("# no metrics registry: the parts are not measured (0)\n");
  std::printf("%8s %6s %8s %8s %8s %8s %8s %8s %8s %8s %8s %8s %8s %7s %7s %7s %7s %7s\n", "bids", "hosts", "setup_s",
              "tick_p50", "tick_p99", "cpu_p50", "clr_p50", "cmt_p50", "cmt_p99", "apl_p50", "book_p50", "book_p99",
              "churn", "alloc_e", "events", "shifts", "renews", "rss_mib");
  for (int s : sizes)
    if (!run(s, ticks, churn, dir, with_metrics)) return 1;
}
