// ledger_tick_bench: what one market tick costs the ledger — the wall time of SqliteLedger::commit_tick (one
// transaction, WAL, synchronous=FULL, fsync included) with synthetic ticks of 1k, 10k and 100k allocations in
// a steady market (the same allocations every tick but for --churn of them: new, changed or ended), each
// with one charge per allocation, failures (10% of allocations), prices (21 per host, 100 allocations
// per host) and bid state changes (1%). Prints per size and variant: median and p99 commit time, rows
// written per tick (inserted, updated or deleted, as SQLite counts them) and bytes appended to the WAL per
// tick (frames x (page size + 24)). The variants are
// applied to the same ledger code through its handle, so they run side by side in one invocation:
//   journal_table  the previous design, re-created (with SQLite's default 2 MiB page cache): a journal table (id
//   AUTOINCREMENT, indexes
//                  journal_by_account(account,id) and journal_by_tick(tick)) with one row per charge and
//                  failure (written by AFTER INSERT triggers), no failures_by_account index
//   journal_table_no_tick_index   the same without journal_by_tick
//   view_cache2m   the journal as a view over charges/failures/credits, whose rowids are the journal ids (one
//                  shared sequence), plus a failures_by_account index; SQLite's default 2 MiB page cache
//   shipped        the ledger as it opens: the view and a 64 MiB page cache (PRAGMA cache_size=-65536)
// After the ticks it times two `ledger show` pages (100 entries) through SqliteLedger::journal: one account's
// newest, and everything since the last tick (medians of 20).
//
//   ledger_tick_bench [--dir /tmp] [--sizes 1000,10000,100000] [--ticks 20] [--churn 0.005]
//                     [--variants shipped,journal_table]
// The database is a fresh file per size and variant under --dir (state the filesystem with the figures).
#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "controller/ledger/sqlite_ledger.h"
#include "tests/support/flags.h"
#include "tests/support/measure.h"

using namespace morph;
using namespace morph::market;
using morph::test::percentile;
using Clock = std::chrono::steady_clock;

namespace {

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string x; std::getline(in, x, ',');)
    if (!x.empty()) out.push_back(x);
  return out;
}

// WAL frames after each commit, through the WAL hook; the hook replaces SQLite's auto-checkpoint, so it does
// the same thing (a passive checkpoint once the WAL holds 1000 pages), inside the COMMIT as the default does.
struct WalCount {
  long frames_now = 0;
  bool restarted = false;
};
int wal_hook(void* arg, sqlite3* db, const char* name, int pages) {
  auto* w = static_cast<WalCount*>(arg);
  w->frames_now = pages;
  if (pages >= 1000) {
    sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
    w->restarted = true;
  }
  return SQLITE_OK;
}

bool exec(sqlite3* db, const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::fprintf(stderr, "ledger_tick_bench: %s: %s\n", sql, err ? err : "?");
    sqlite3_free(err);
    return false;
  }
  return true;
}

bool apply_variant(sqlite3* db, const std::string& v) {
  if (v == "shipped") return true;
  if (v == "view_cache2m") return exec(db, "PRAGMA cache_size=-2000");
  if (v == "journal_table" || v == "journal_table_no_tick_index")
    return exec(db,
                "PRAGMA cache_size=-2000;"
                "DROP INDEX failures_by_account;"
                "CREATE TABLE journal_table(id INTEGER PRIMARY KEY AUTOINCREMENT, tick INTEGER NOT NULL,"
                " account TEXT NOT NULL, kind TEXT NOT NULL CHECK (kind IN ('charge','deposit','failure')),"
                " amount INTEGER NOT NULL, bid_id INTEGER NOT NULL, reason TEXT NOT NULL, ts_ns INTEGER NOT NULL);"
                "CREATE INDEX journal_by_account ON journal_table(account, id);"
                "CREATE TRIGGER journal_charge AFTER INSERT ON charges BEGIN INSERT INTO journal_table(tick, account,"
                " kind, amount, bid_id, reason, ts_ns) VALUES(NEW.tick, NEW.account, 'charge', -NEW.amount, NEW.bid_id,"
                " '', NEW.rowid); END;"
                "CREATE TRIGGER journal_failure AFTER INSERT ON failures BEGIN INSERT INTO journal_table(tick, account,"
                " kind, amount, bid_id, reason, ts_ns) VALUES(NEW.tick, NEW.account, 'failure', 0, NEW.bid_id,"
                " NEW.reason, NEW.rowid); END;") &&
           (v == "journal_table_no_tick_index" || exec(db, "CREATE INDEX journal_by_tick ON journal_table(tick)"));
  std::fprintf(stderr,
               "ledger_tick_bench: unknown variant '%s' (journal_table, journal_table_no_tick_index, view_cache2m, "
               "shipped)\n",
               v.c_str());
  return false;
}

// A steady market: the same allocations tick after tick, of which a fraction (`churn`) changes per tick — a
// third are new bids, a third change quantity and price, a third end — as in a running controller (0.5 % of
// the bids churn per tick in market_tick_bench). Every allocation is charged every tick.
class SteadyMarket {
 public:
  SteadyMarket(int allocations, int accounts, double churn)
      : accounts_(accounts), hosts_(std::max(1, allocations / 100)), churn_(churn), rng_(42) {
    for (int i = 0; i < allocations; ++i) allocs_.push_back(make(static_cast<BidId>(i + 1), 1));
    next_id_ = static_cast<BidId>(allocations + 1);
  }

  TickOutcome next(Tick t) {
    if (t > 1) {
      const int n = std::max(3, static_cast<int>(churn_ * static_cast<double>(allocs_.size())));
      for (int i = 0; i < n; ++i) {
        auto& a = allocs_[pick(allocs_.size())];
        if (i % 3 == 0) {
          allocs_.push_back(make(next_id_++, t));
        } else if (i % 3 == 1) {
          a.quantity = 100 + static_cast<int64_t>(pick(900));
          a.price = 3 + static_cast<Micros>(pick(7));
          a.since = t;
        } else {
          a = allocs_.back();
          allocs_.pop_back();
        }
      }
    }
    static const Tier tiers[] = {Tier::sla, Tier::improve, Tier::speculative};
    TickOutcome o;
    o.tick = t;
    o.allocations = allocs_;
    for (const auto& a : allocs_) {
      o.charges.push_back({a.bid_id, a.account, a.quantity * a.price});
      o.revenue += a.quantity * a.price;
    }
    const int n = static_cast<int>(allocs_.size());
    for (int i = 0; i < n / 10; ++i)
      o.failures.push_back({static_cast<BidId>(10'000'000 + i), "acct" + std::to_string(i % accounts_),
                            FailureReason::no_capacity, "book full"});
    for (int h = 0; h < hosts_; ++h)
      for (Resource r : kMarketResources)
        for (Tier tr : tiers) o.prices.push_back({"host" + std::to_string(h), r, tr, 5, 1000});
    for (int i = 0; i < n / 100; ++i) {
      Bid b;
      b.id = static_cast<BidId>(20'000'000 + (static_cast<int>(t) * 1000 + i) % 50000);
      b.account = "acct" + std::to_string(i % accounts_);
      b.vm = "vm";
      b.host = "host0";
      b.quantity = 10;
      b.min_fill = 1;
      b.max_price = 9;
      b.expiry = t + 100;
      b.submitted = 1;
      b.seq = b.id;
      b.state = BidState::suspended;
      b.state_reason = FailureReason::insufficient_funds;
      o.bid_changes.push_back(b);
    }
    return o;
  }

 private:
  size_t pick(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }
  Allocation make(BidId id, Tick t) {
    static const Resource res[] = {Resource::cpu, Resource::memory, Resource::disk_iops, Resource::net_out_kbps};
    static const Tier tiers[] = {Tier::sla, Tier::improve, Tier::speculative};
    const int i = static_cast<int>(id);
    Allocation a;
    a.bid_id = id;
    a.account = "acct" + std::to_string(i % accounts_);
    a.host = "host" + std::to_string(i % hosts_);
    a.vm = a.host + "-vm" + std::to_string((i / hosts_) % 20);
    a.resource = res[i % 4];
    a.tier = tiers[i % 3];
    a.quantity = 100 + i % 900;
    a.price = 3 + i % 7;
    a.since = t;
    return a;
  }

  int accounts_, hosts_;
  double churn_;
  std::mt19937_64 rng_;
  std::vector<Allocation> allocs_;
  BidId next_id_ = 1;
};

bool run(const std::string& dir, int allocations, int ticks, double churn, const std::string& variant) {
  const std::string path = dir + "/ledger_tick_bench_" + std::to_string(allocations) + "_" + variant + ".db";
  for (const char* sfx : {"", "-wal", "-shm"}) std::filesystem::remove(path + sfx);
  auto opened = ledger::SqliteLedger::open(path);
  if (!opened) {
    std::fprintf(stderr, "ledger_tick_bench: %s\n", opened.error().message().c_str());
    return false;
  }
  auto& l = **opened;
  sqlite3* db = l.handle();
  if (!apply_variant(db, variant)) return false;
  const int accounts = 500;
  for (int a = 0; a < accounts; ++a)
    if (auto st = l.create_account({"acct" + std::to_string(a), int64_t{1} << 40}); !st.ok()) {
      std::fprintf(stderr, "ledger_tick_bench: %s\n", st.error().message().c_str());
      return false;
    }
  int page = 4096;
  {
    sqlite3_stmt* s = nullptr;
    sqlite3_prepare_v2(db, "PRAGMA page_size", -1, &s, nullptr);
    if (sqlite3_step(s) == SQLITE_ROW) page = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
  }
  WalCount wal;
  sqlite3_wal_hook(db, wal_hook, &wal);
  std::vector<double> ms, cpu, bytes, rows;
  const int warmup = 2;
  SteadyMarket market(allocations, accounts, churn);
  for (int i = 1; i <= ticks + warmup; ++i) {
    TickOutcome o = market.next(static_cast<Tick>(i));
    // Rows the commit inserted, updated or deleted (triggers' included), whatever the ledger's layout.
    const int64_t changes0 = sqlite3_total_changes64(db);
    const long before = wal.restarted ? 0 : wal.frames_now;
    wal.restarted = false;
    const double c0 = morph::test::thread_cpu_ms();
    auto t0 = Clock::now();
    auto st = l.commit_tick(o);
    const double d = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    const double c = morph::test::thread_cpu_ms() - c0;
    if (!st.ok()) {
      std::fprintf(stderr, "ledger_tick_bench: tick %d: %s\n", i, st.error().message().c_str());
      return false;
    }
    // A commit that checkpointed: its own frames are what the hook saw before the checkpoint reset.
    const long frames = wal.frames_now - before;
    if (i > warmup) {
      ms.push_back(d);
      cpu.push_back(c);
      bytes.push_back(static_cast<double>(frames) * (page + 24));
      rows.push_back(static_cast<double>(sqlite3_total_changes64(db) - changes0));
    }
  }
  // Two `ledger show` pages through the shipped query.
  std::vector<double> page_acct, page_since;
  for (int i = 0; i < 20; ++i) {
    auto t0 = Clock::now();
    auto p = l.journal({"acct7", 0, "", 0, 100});
    page_acct.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    t0 = Clock::now();
    auto q = l.journal({"", static_cast<Tick>(ticks + warmup), "", 0, 100});
    page_since.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    if (!p || p->empty() || !q || q->size() != 100) {
      std::fprintf(stderr, "ledger_tick_bench: a journal page came back short\n");
      return false;
    }
  }
  auto audit = l.audit();
  if (!audit) std::fprintf(stderr, "ledger_tick_bench: audit: %s\n", audit.error().message().c_str());
  std::printf("%-8d %-28s %5d %9.1f %9.1f %9.1f %8.0f %11.0f %8.2f %8.2f %s\n", allocations, variant.c_str(), ticks,
              percentile(ms, 0.5), percentile(ms, 0.99), percentile(cpu, 0.5), percentile(rows, 0.5),
              percentile(bytes, 0.5), percentile(page_acct, 0.5), percentile(page_since, 0.5),
              audit ? (audit->ok() ? "ok" : "FAILED") : "error");
  std::fflush(stdout);
  for (const char* sfx : {"", "-wal", "-shm"}) std::filesystem::remove(path + sfx);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  const morph::test::Flags flags(argc, argv, {"--dir", "--sizes", "--ticks", "--churn", "--variants"});
  if (!flags.error().empty()) {
    std::fprintf(stderr,
                 "usage: ledger_tick_bench [--dir D] [--sizes N,..] [--ticks N] [--churn F] [--variants V,..]\n");
    return 2;
  }
  const std::string dir = flags.text("--dir", "/tmp"), sizes = flags.text("--sizes", "1000,10000,100000"),
                    variants =
                        flags.text("--variants", "journal_table,journal_table_no_tick_index,view_cache2m,shipped");
  const int ticks = static_cast<int>(flags.number("--ticks", 20));
  const double churn = std::atof(flags.text("--churn", "0.005").c_str());
  if (ticks < 1) {
    std::fprintf(stderr, "ledger_tick_bench: --ticks must be >= 1\n");
    return 2;
  }
  std::printf(
      "# SQLite %s, dir %s; commit_tick wall time per tick (fsync included), medians over %d ticks, churn %.3f of the "
      "allocations per tick; rows = rows inserted, updated or deleted per tick (median)\n",
      sqlite3_libversion(), dir.c_str(), ticks, churn);
  std::printf("%-8s %-28s %5s %9s %9s %9s %8s %11s %8s %8s %s\n", "allocs", "variant", "ticks", "p50_ms", "p99_ms",
              "cpu_p50", "rows", "wal_bytes", "acct_pg", "since_pg", "audit");
  for (const auto& s : split(sizes))
    for (const auto& v : split(variants)) {
      // Big ticks take seconds each: fewer of them.
      const int n = std::stoi(s) >= 100000 ? std::max(3, ticks / 4) : ticks;
      if (!run(dir, std::stoi(s), n, churn, v)) return 1;
    }
  return 0;
}
