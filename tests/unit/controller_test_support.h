#pragma once
// The controller's parts under test: a real MarketState over a real SQLite ledger in a fresh temporary
// directory (the ledger is a library, not a daemon), a ManualClock, and a gmock ControllerLink that keeps
// what the parts publish and send. Plus builders of the wire messages the parts take (HostHello,
// KpiReport, ApiRequest) and readers of the replies they build.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "api_reply_generated.h"
#include "common/msg/wire.h"
#include "controller/api/market_api.h"
#include "controller/ledger/sqlite_ledger.h"
#include "controller/market_state/market_state.h"
#include "market_event_generated.h"
#include "tests/support/manual_clock.h"

namespace morph::controller::fixtures {

class MockLink : public ControllerLink {
 public:
  MOCK_METHOD(void, publish_event, (std::string topic, v1::MarketEventBody type, EventBodyBuilder build), (override));
  MOCK_METHOD(void, send_shift, (std::string host, msg::ShiftOrder order), (override));
  MOCK_METHOD(void, renew_lease, (std::string host, msg::LeaseRenewal renewal), (override));

  struct Event {
    std::string topic;
    v1::MarketEventBody type;
    EventBodyBuilder build;
  };
  // By default every call is kept here (EXPECT_CALLs may be added on top).
  std::vector<Event> events;
  std::vector<std::pair<std::string, msg::ShiftOrder>> shifts;
  std::vector<std::pair<std::string, msg::LeaseRenewal>> renewals;

  MockLink() {
    using ::testing::_;
    ON_CALL(*this, publish_event(_, _, _))
        .WillByDefault([this](std::string t, v1::MarketEventBody y, EventBodyBuilder b) {
          events.push_back({std::move(t), y, std::move(b)});
        });
    ON_CALL(*this, send_shift(_, _)).WillByDefault([this](std::string h, msg::ShiftOrder o) {
      shifts.emplace_back(std::move(h), std::move(o));
    });
    ON_CALL(*this, renew_lease(_, _)).WillByDefault([this](std::string h, msg::LeaseRenewal r) {
      renewals.emplace_back(std::move(h), std::move(r));
    });
  }
  void clear() {
    events.clear();
    shifts.clear();
    renewals.clear();
  }
  std::vector<std::string> topics() const {
    std::vector<std::string> out;
    for (auto& e : events) out.push_back(e.topic);
    return out;
  }
  // Builds event i's body (as the messaging thread would; the builder takes MarketState's lock) and reads
  // it as T.
  template <class T>
  const T* body(size_t i, flatbuffers::FlatBufferBuilder& fbb) const {
    auto off = events.at(i).build(fbb);
    fbb.Finish(flatbuffers::Offset<T>(off.o));
    return flatbuffers::GetRoot<T>(fbb.GetBufferPointer());
  }
};

inline std::filesystem::path make_temp_dir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "morph-unit.XXXXXX").string();
  if (!mkdtemp(tmpl.data())) ADD_FAILURE() << "mkdtemp failed";
  return tmpl;
}

// A market small enough to reason about: reserve 1 everywhere, no hold, no notice, no hysteresis.
inline MarketServiceConfig small_market_config() {
  MarketServiceConfig c;
  c.tick = std::chrono::seconds(1);
  for (Resource r : kMarketResources) c.market.set_reserve(r, 1);
  c.market.hold_ticks = 1;
  c.market.notice_ticks = 0;
  c.market.hysteresis_pct = 0;
  return c;
}

// MarketState over a SQLite ledger in a directory removed at the end; reopen() is a controller restart.
class MarketStateFixture {
 public:
  explicit MarketStateFixture(MarketServiceConfig cfg = small_market_config()) : cfg_(std::move(cfg)) {
    cfg_.ledger_path = (dir_ / "ledger.db").string();
    reopen();
  }
  ~MarketStateFixture() {
    state.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  void reopen() {
    state.reset();
    auto ledger = ledger::SqliteLedger::open(cfg_.ledger_path);
    ASSERT_TRUE(ledger) << ledger.error().what();
    // Durability is the ledger's own tests' subject: here a commit need not wait for the disk.
    sqlite3_exec((*ledger)->handle(), "PRAGMA synchronous=OFF", nullptr, nullptr, nullptr);
    auto s = MarketState::recover(cfg_, std::move(ledger).value(), clock, operator_state);
    ASSERT_TRUE(s) << s.error().what();
    state = std::move(s).value();
    state->attach(&link);
  }
  void open_account(const std::string& id, market::Micros balance = 1'000'000'000) {
    ASSERT_TRUE(state->exchange().open_account({id, 0}, "", clock.wall_ns()).ok());
    state->add_account(id, {"", clock.wall_ns()});
    if (balance > 0) {
      ASSERT_TRUE(state->exchange().deposit(id, balance).ok());
    }
  }

  test::ManualClock clock;
  ::testing::NiceMock<MockLink> link;
  std::unique_ptr<MarketState> state;
  ledger::OperatorState operator_state;

 private:
  std::filesystem::path dir_ = make_temp_dir();
  MarketServiceConfig cfg_;
};

// The outcome of every bid event the parts published (BidOutcome bodies), in order.
inline std::vector<std::string> bid_outcomes(const MockLink& link) {
  std::vector<std::string> out;
  for (size_t i = 0; i < link.events.size(); ++i) {
    flatbuffers::FlatBufferBuilder fbb;
    out.push_back(link.body<v1::BidOutcome>(i, fbb)->outcome()->str());
  }
  return out;
}

// --- wire builders ---

struct HelloVm {
  std::string uuid;
  std::string owner;
  int64_t cpu_baseline = 1000;
  int64_t cpu_ceiling = 0;  // 0: not said (the host's capacity)
};

// A verified-shape HostHello: cpu capacity and VMs with cpu baselines (and ceilings).
class Hello {
 public:
  Hello(const std::string& host, int64_t cpu_capacity, const std::vector<HelloVm>& vms) {
    std::vector<flatbuffers::Offset<v1::ResourceAmount>> cap{
        v1::CreateResourceAmount(fbb_, v1::Resource::cpu, cpu_capacity)};
    std::vector<flatbuffers::Offset<v1::VmBaselineInfo>> infos;
    for (auto& v : vms) {
      std::vector<flatbuffers::Offset<v1::ResourceAmount>> base{
          v1::CreateResourceAmount(fbb_, v1::Resource::cpu, v.cpu_baseline)};
      std::vector<flatbuffers::Offset<v1::ResourceAmount>> ceil;
      if (v.cpu_ceiling) ceil.push_back(v1::CreateResourceAmount(fbb_, v1::Resource::cpu, v.cpu_ceiling));
      infos.push_back(v1::CreateVmBaselineInfoDirect(fbb_, v.uuid.c_str(), v.uuid.c_str(), v.owner.c_str(), "gold",
                                                     true, &base, 0, &ceil));
    }
    fbb_.Finish(v1::CreateHostHelloDirect(fbb_, host.c_str(), 1, 1, "test", &cap, &infos, 1'000'000'000),
                v1::HostHelloIdentifier());
  }
  const v1::HostHello& operator*() const { return *flatbuffers::GetRoot<v1::HostHello>(fbb_.GetBufferPointer()); }

 private:
  flatbuffers::FlatBufferBuilder fbb_;
};

// A KpiReport of one host: one entry per VM, over `interval_ns` ending at `end_ns`.
class Report {
 public:
  Report(const std::string& host, uint64_t end_ns, const std::vector<kpi::VmKpis>& vms,
         uint64_t interval_ns = 1'000'000'000) {
    msg::encode_kpi_report(fbb_, {host, ++seq_, 1, interval_ns, end_ns}, vms);
  }
  const v1::KpiReport& operator*() const { return *flatbuffers::GetRoot<v1::KpiReport>(fbb_.GetBufferPointer()); }

 private:
  inline static uint64_t seq_ = 0;
  flatbuffers::FlatBufferBuilder fbb_;
};

// One VM's interval: `run_ms` on CPU and `wait_ms` waiting for it within `interval_ms`.
inline kpi::VmKpis vm_kpis(const std::string& uuid, uint64_t run_ms, uint64_t wait_ms, uint64_t interval_ms = 1000) {
  kpi::VmKpis k;
  k.uuid = uuid;
  k.name = uuid;
  k.interval_ns = interval_ms * 1'000'000;
  k.cpu_run_ns = run_ms * 1'000'000;
  k.cpu_wait_ns = wait_ms * 1'000'000;
  return k;
}

// An ApiRequest with its body built by `body`.
class Request {
 public:
  template <class F>
  Request(v1::ApiRequestBody type, F body) {
    auto b = body(fbb_);
    fbb_.Finish(v1::CreateApiRequest(fbb_, 1, type, b.Union()), v1::ApiRequestIdentifier());
  }
  const v1::ApiRequest& operator*() const { return *flatbuffers::GetRoot<v1::ApiRequest>(fbb_.GetBufferPointer()); }

 private:
  flatbuffers::FlatBufferBuilder fbb_;
};

// A reply body as T (finishes fbb).
template <class T>
const T* reply_as(flatbuffers::FlatBufferBuilder& fbb, const ReplyBody& r) {
  fbb.Finish(flatbuffers::Offset<T>(r.offset.o));
  return flatbuffers::GetRoot<T>(fbb.GetBufferPointer());
}

inline Caller admin() {
  return Caller{msg::Role::admin, "ops", "", false};
}
inline Caller tenant(const std::string& account) {
  return Caller{msg::Role::tenant, "tenant-" + account, account, false};
}

}  // namespace morph::controller::fixtures
