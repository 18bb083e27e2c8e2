#pragma once
// A ledger test's world: a fresh SQLite file in its own temp directory, an Exchange over it with accounts
// alice (100,000 µcr) and bob (5,000), and one host h1 with their VMs vm-a and vm-b.

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "controller/ledger/exchange.h"
#include "controller/ledger/sqlite_ledger.h"
#include "tests/support/files.h"

namespace morph::ledger::testing {

using namespace morph::market;

inline MarketConfig config() {
  MarketConfig c;
  for (Resource r : kMarketResources) c.set_reserve(r, 2);
  c.hold_ticks = 2;
  c.notice_ticks = 1;
  return c;
}

inline void inventory(Market& m) {
  ASSERT_TRUE(m.upsert_host({"h1", {1000, 1000, 1000, 1000, 1000, 1000, 4}}).ok());
  for (const char* v : {"vm-a", "vm-b"}) {
    VmSpec vm{v, std::string(v) == "vm-a" ? "alice" : "bob", "h1", {}, {}};
    vm.ceiling.fill(800);
    ASSERT_TRUE(m.upsert_vm(vm).ok());
  }
}

class LedgerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(dir_.ok());
    path_ = (dir_ / "ledger.db").string();
    auto l = SqliteLedger::open(path_);
    ASSERT_TRUE(l.ok()) << l.error().what();
    ledger_ = std::move(*l);
    market_ = std::make_unique<Market>(config());
    ex_ = std::make_unique<Exchange>(*market_, *ledger_);
    ASSERT_TRUE(ex_->open_account({"alice", 100'000}).ok());
    ASSERT_TRUE(ex_->open_account({"bob", 5'000}).ok());
    inventory(*market_);
  }
  morph::test::TempDir dir_{"ledger"};
  std::string path_;
  std::unique_ptr<SqliteLedger> ledger_;
  std::unique_ptr<Market> market_;
  std::unique_ptr<Exchange> ex_;
};

}  // namespace morph::ledger::testing
