// Kills the real tick loop (ledger_crash_driver) with SIGKILL at random instants, restarts it, and after
// every kill checks the ledger: every tick the driver reported committed is there (none lost), tick
// numbers are contiguous and each is recorded once (none charged twice), the restarted driver resumes at
// exactly the next tick with exactly the allocations that tick committed (the ledger stores only their
// changes), and balances equal credits minus charges with debits = market revenue; no two entries of the
// journal `morphctl ledger show` pages through share an id (AuditReport::journal_mismatch).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <random>
#include <string>

#include "controller/ledger/sqlite_ledger.h"
#include "tests/support/files.h"
#include "tests/support/process.h"

namespace morph::ledger {
namespace {

struct DriverRun {
  bool exited = false;  // reached --until by itself
  long recovered = -1;  // tick it said it recovered at
  std::string recovered_digest;
  long last_reported = -1;  // last "committed N" read before the kill
  std::string last_digest;  // of that tick's allocations
  long reported = 0;
};

// Starts the driver, lets it run for `ms` milliseconds (or to completion), then SIGKILLs it.
DriverRun run_driver(const std::filesystem::path& dir, long until, uint64_t seed, int ms) {
  test::ChildProcess driver({LEDGER_CRASH_DRIVER, "--db", (dir / "ledger.db").string(), "--until",
                             std::to_string(until), "--seed", std::to_string(seed), "--sleep-us", "500"},
                            dir / "driver.out", {.stop_signal = SIGKILL, .grace = {}});
  // Let it run, then kill it wherever it is; then read everything it managed to write.
  DriverRun r;
  const int status = driver.wait_exit(std::chrono::milliseconds(ms));
  r.exited = status >= 0;
  if (!r.exited)
    driver.kill9();
  else
    EXPECT_EQ(status, 0) << "driver failed";
  const std::string out = driver.out();
  size_t pos = 0;
  while (pos < out.size()) {
    size_t nl = out.find('\n', pos);
    if (nl == std::string::npos) break;  // a torn last line is not a report
    std::string line = out.substr(pos, nl - pos);
    pos = nl + 1;
    const std::string digest = line.substr(line.rfind(' ') + 1);
    if (line.rfind("recovered ", 0) == 0) {
      r.recovered = std::stol(line.substr(10));
      r.recovered_digest = digest;
    }
    if (line.rfind("committed ", 0) == 0) {
      long t = std::stol(line.substr(10));
      r.last_digest = digest;
      if (r.last_reported >= 0) {
        EXPECT_EQ(t, r.last_reported + 1) << "ticks reported out of order";
      }
      r.last_reported = t;
      ++r.reported;
    }
  }
  return r;
}

TEST(LedgerCrash, SigkillAtRandomPointsLosesNothingAndChargesNothingTwice) {
  test::TempDir dir("crash");
  ASSERT_TRUE(dir.ok());
  const std::string db = (dir / "ledger.db").string();
  constexpr long kTicks = 600;
  std::mt19937 rng(20261124);
  long last_known = 0;
  int kills = 0, restarts = 0, restored = 0;
  std::pair<long, std::string> last_seen{-1, ""};  // the last tick a driver reported, and its allocations' digest
  int window_ms = 250;  // kill somewhere in the first window_ms of each run; widened on slow builds (ASAN)
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(240);
  for (int round = 0; std::chrono::steady_clock::now() < deadline; ++round) {
    DriverRun r = run_driver(dir.path(), kTicks, rng(), std::uniform_int_distribution<int>(15, window_ms)(rng));
    ++restarts;
    if (!r.exited) ++kills;
    SCOPED_TRACE("round " + std::to_string(round));
    // It resumed exactly where the ledger left off (unless killed before it could say so).
    if (r.recovered >= 0) {
      EXPECT_EQ(r.recovered, last_known) << "restart did not resume at the last committed tick";
      // ... with exactly the allocations that tick committed (when its report got out before the kill).
      if (r.recovered == last_seen.first) {
        EXPECT_EQ(r.recovered_digest, last_seen.second) << "tick " << r.recovered << "'s allocations not restored";
        ++restored;
      }
    }
    if (r.last_reported >= 0) last_seen = {r.last_reported, r.last_digest};

    auto led = SqliteLedger::open(db);
    ASSERT_TRUE(led.ok()) << led.error().what();
    auto last = (*led)->last_tick();
    ASSERT_TRUE(last.ok());
    // No committed tick lost: everything reported is there; at most one more (committed, not yet reported).
    if (r.last_reported >= 0) {
      EXPECT_GE(static_cast<long>(*last), r.last_reported) << "a reported tick was lost";
      EXPECT_LE(static_cast<long>(*last), r.last_reported + 1);
    }
    EXPECT_GE(static_cast<long>(*last), last_known);
    auto a = (*led)->audit();
    ASSERT_TRUE(a.ok()) << a.error().what();
    EXPECT_TRUE(a->ok()) << a->describe();
    EXPECT_EQ(a->tick_count, *last);
    const long progress = static_cast<long>(*last) - last_known;
    if (progress < 2) window_ms = std::min(window_ms * 2, 4000);
    // Narrowed when runs commit many ticks each: a fast disk otherwise reaches kTicks in a dozen runs.
    if (progress > 20) window_ms = std::max(window_ms / 2, 60);
    last_known = static_cast<long>(*last);
    if (::testing::Test::HasFailure()) break;
    if (r.exited) break;
  }
  auto led = SqliteLedger::open(db);
  ASSERT_TRUE(led.ok());
  auto a = (*led)->audit();
  ASSERT_TRUE(a.ok());
  std::printf("restarts %d, SIGKILLs %d, ticks committed %ld, allocations compared after %d restarts, %s\n", restarts,
              kills, last_known, restored, a->describe().c_str());
  EXPECT_GT(a->total_charges, 0) << "the driver's market never traded";
  EXPECT_EQ(last_known, kTicks);
  EXPECT_GE(kills, 10);
  EXPECT_GE(restored, 5) << "too few restarts followed a reported tick to compare allocations";
}

}  // namespace
}  // namespace morph::ledger
