// market_quality_bench: allocation quality of the clearing rule against the exact optimum, on small random
// single-book instances (mixed tiers, all-or-nothing and partial bids). The optimum is a MIP solved by
// GLPK's glpsol (CPLEX-LP files), lexicographic by tier like the market: first the SLA tier's welfare
// (sum of max_price x units) is maximised, then the improve tier's with SLA held at its optimum, then
// the speculative tier's. Prints, side by side, our welfare / the optimum's and our time / glpsol's.
//
//   market_quality_bench [--instances 200] [--seed 1] [--glpsol /usr/bin/glpsol] [--keep DIR]
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "controller/market/clearing.h"
#include "tests/support/flags.h"
#include "tests/support/process.h"

using namespace morph::market;
using Clock = std::chrono::steady_clock;

namespace {

struct Instance {
  int64_t supply = 0;
  std::vector<BookBid> bids;
};

Instance random_instance(std::mt19937_64& rng) {
  auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  Instance in;
  int n = static_cast<int>(pick(4, 14));
  int64_t demand = 0;
  for (int i = 0; i < n; ++i) {
    BookBid b;
    b.id = static_cast<BidId>(i + 1);
    b.seq = static_cast<uint64_t>(i + 1);
    b.tier = static_cast<Tier>(pick(0, 2));
    b.quantity = pick(1, 20);
    b.min_fill = pick(0, 2) == 0 ? b.quantity : pick(1, b.quantity);  // a third all-or-nothing
    b.max_price = pick(1, 30);
    demand += b.quantity;
    in.bids.push_back(b);
  }
  in.supply = std::max<int64_t>(1, demand * pick(30, 80) / 100);
  return in;
}

// Maximises tier t's welfare with the tiers above held at `floor`. Returns the objective, or -1.
long solve_tier(const Instance& in, int t, const std::vector<long>& floor, const std::string& dir, int id,
                const std::string& glpsol, double& wall_ms) {
  std::string lp = dir + "/i" + std::to_string(id) + "_t" + std::to_string(t) + ".lp";
  std::string sol = lp + ".sol";
  std::ofstream f(lp);
  auto term = [&](int64_t c, size_t i) { return " + " + std::to_string(c) + " x" + std::to_string(i); };
  f << "\\* market instance " << id << ", tier " << t << " *\\\nMaximize\n obj:";
  bool any = false;
  for (size_t i = 0; i < in.bids.size(); ++i)
    if (static_cast<int>(in.bids[i].tier) == t) f << term(in.bids[i].max_price, i), any = true;
  if (!any) return 0;
  f << "\nSubject To\n cap:";
  for (size_t i = 0; i < in.bids.size(); ++i) f << term(1, i);
  f << " <= " << in.supply << "\n";
  for (size_t i = 0; i < in.bids.size(); ++i) {
    f << " lo" << i << ": x" << i << " - " << in.bids[i].min_fill << " y" << i << " >= 0\n";
    f << " hi" << i << ": x" << i << " - " << in.bids[i].quantity << " y" << i << " <= 0\n";
  }
  for (int u = 0; u < t; ++u) {
    bool has = false;
    std::ostringstream row;
    for (size_t i = 0; i < in.bids.size(); ++i)
      if (static_cast<int>(in.bids[i].tier) == u) row << term(in.bids[i].max_price, i), has = true;
    if (has) f << " keep" << u << ":" << row.str() << " >= " << floor[static_cast<size_t>(u)] << "\n";
  }
  f << "Bounds\n";
  for (size_t i = 0; i < in.bids.size(); ++i) f << " 0 <= x" << i << " <= " << in.bids[i].quantity << "\n";
  f << "Binaries\n";
  for (size_t i = 0; i < in.bids.size(); ++i) f << " y" << i << "\n";
  f << "Generals\n";
  for (size_t i = 0; i < in.bids.size(); ++i) f << " x" << i << "\n";
  f << "End\n";
  f.close();

  auto t0 = Clock::now();
  morph::test::ChildProcess solver({glpsol, "--lp", lp, "-o", sol}, lp + ".out");
  const int status = solver.wait();
  wall_ms += std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  if (status != 0) return -1;
  std::ifstream s(sol);
  for (std::string line; std::getline(s, line);) {
    auto p = line.find("obj = ");
    if (line.rfind("Objective:", 0) == 0 && p != std::string::npos) return std::atol(line.c_str() + p + 6);
  }
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  const morph::test::Flags flags(argc, argv, {"--instances", "--seed", "--glpsol", "--keep"});
  const int instances = static_cast<int>(flags.number("--instances", 200));
  const auto seed = static_cast<uint64_t>(flags.number("--seed", 1));
  const std::string glpsol = flags.text("--glpsol", "/usr/bin/glpsol"), keep = flags.text("--keep");
  if (access(glpsol.c_str(), X_OK) != 0) {
    std::fprintf(stderr, "market_quality_bench: %s not found (apt-get install glpk-utils)\n", glpsol.c_str());
    return 77;
  }
  std::string dir = keep.empty()
                        ? (std::filesystem::temp_directory_path() / ("morph-mip-" + std::to_string(getpid()))).string()
                        : keep;
  std::filesystem::create_directories(dir);

  std::mt19937_64 rng(seed);
  BookParams params;
  params.reserve = {1, 1, 1};
  double ours_ms = 0, glpk_ms = 0, worst = 1.0, sum_ratio = 0;
  long ours_total = 0, opt_total = 0;
  std::vector<long> ours_tier(kTierCount, 0), opt_tier(kTierCount, 0);
  int beats_optimum = 0;  // ours lexicographically above the MIP: would mean the MIP is wrong
  int optimal = 0, tier_order_same = 0, solved = 0;
  std::printf("# %d random instances (4-14 bids, 3 tiers, 1/3 all-or-nothing), seed %lu\n", instances,
              static_cast<unsigned long>(seed));
  for (int id = 0; id < instances; ++id) {
    Instance in = random_instance(rng);
    params.supply = in.supply;
    // Ours: repeat to get a measurable time.
    const int reps = 2000;
    BookResult r;
    auto t0 = Clock::now();
    for (int k = 0; k < reps; ++k) r = clear_book(params, in.bids);
    ours_ms += std::chrono::duration<double, std::milli>(Clock::now() - t0).count() / reps;
    std::vector<long> ours(kTierCount, 0), opt(kTierCount, 0);
    for (size_t i = 0; i < in.bids.size(); ++i)
      ours[static_cast<size_t>(in.bids[i].tier)] += r.fills[i].quantity * in.bids[i].max_price;
    bool ok = true;
    for (int t = 0; t < kTierCount && ok; ++t) {
      long v = solve_tier(in, t, opt, dir, id, glpsol, glpk_ms);
      if (v < 0) ok = false;
      opt[static_cast<size_t>(t)] = v;
    }
    if (!ok) {
      std::fprintf(stderr, "instance %d: glpsol failed\n", id);
      continue;
    }
    ++solved;
    long o = opt[0] + opt[1] + opt[2], u = ours[0] + ours[1] + ours[2];
    ours_total += u;
    opt_total += o;
    if (ours == opt) ++optimal;
    if (ours > opt) ++beats_optimum;
    for (size_t t = 0; t < kTierCount; ++t) ours_tier[t] += ours[t], opt_tier[t] += opt[t];
    if (ours[0] == opt[0]) ++tier_order_same;
    double ratio = o == 0 ? 1.0 : static_cast<double>(u) / static_cast<double>(o);
    sum_ratio += ratio;
    worst = std::min(worst, ratio);
  }
  if (keep.empty()) std::filesystem::remove_all(dir);
  if (solved == 0) return 1;
  std::printf(
      "(the optimum is lexicographic by tier, so its total welfare can be below ours when ours\n"
      " gives up SLA-tier value for more in lower tiers; per-tier rows and the lexicographic check\n"
      " are the fair comparison)\n");
  std::printf("%-34s %12s %12s\n", "", "ours", "glpsol (MIP)");
  std::printf("%-34s %12ld %12ld\n", "total welfare (sum max_price*units)", ours_total, opt_total);
  for (int t = 0; t < kTierCount; ++t)
    std::printf("%-34s %12ld %12ld  (%.2f%%)\n",
                (std::string("  welfare of tier ") + tier_name(static_cast<Tier>(t))).c_str(),
                ours_tier[static_cast<size_t>(t)], opt_tier[static_cast<size_t>(t)],
                100.0 * static_cast<double>(ours_tier[static_cast<size_t>(t)]) /
                    static_cast<double>(std::max(1L, opt_tier[static_cast<size_t>(t)])));
  std::printf("%-34s %11.2f%% %12s\n", "welfare / optimum (aggregate)",
              100.0 * static_cast<double>(ours_total) / static_cast<double>(opt_total), "100%");
  std::printf("%-34s %11.2f%% %12s\n", "welfare / optimum (mean)", 100.0 * sum_ratio / solved, "100%");
  std::printf("%-34s %11.2f%% %12s\n", "welfare / optimum (worst)", 100.0 * worst, "100%");
  std::printf("%-34s %8d/%d %12s\n", "instances optimal on every tier", optimal, solved, "all");
  std::printf("%-34s %8d/%d %12s\n", "instances optimal on SLA tier", tier_order_same, solved, "all");
  std::printf("%-34s %10d %12s\n", "lexicographically above the MIP", beats_optimum, "(must be 0)");
  std::printf("%-34s %12.2f %12.1f\n", "mean time per instance (us)", 1000.0 * ours_ms / solved,
              1000.0 * glpk_ms / solved);
  std::printf("(glpsol time is wall time of its processes, one per tier, start-up included)\n");
  return 0;
}
