// FleetView's folding of events and snapshots, without sockets: market events built with the generated
// FlatBuffers API and passed through the same verified decoder the live consumer uses. Covers what the
// live test cannot provoke on demand: seq gaps and new incarnations (resync), allocations granted and
// revoked (per-VM history), price points per book and tick, bounded rings, and `top`'s rendering of them.
#include <gtest/gtest.h>

#include "common/msg/wire.h"
#include "controller/cli/top.h"
#include "controller/dashboard/dashboard.h"

namespace morph {
namespace {

using fleet::FleetState;
using fleet::FleetViewOptions;

struct EventBuilder {
  flatbuffers::FlatBufferBuilder fbb;
  uint64_t incarnation = 7, seq = 0, t = 1'000'000'000'000ULL;

  template <class F>
  bool apply(FleetState& s, v1::MarketEventBody type, F&& body, const FleetViewOptions& o = {}) {
    fbb.Clear();
    auto b = body(fbb);
    t += 1'000'000'000ULL;
    fbb.Finish(v1::CreateMarketEvent(fbb, ++seq, incarnation, t, type, b), "MEVT");
    auto e = msg::decode_market_event(msg::span_of(fbb));
    EXPECT_TRUE(e) << e.error().describe();
    return fleet::apply_event(s, **e, o);
  }

  bool kpi(FleetState& s, const std::string& uuid, uint64_t run_ns, uint64_t wait_ns, const FleetViewOptions& o = {}) {
    flatbuffers::FlatBufferBuilder inner;
    auto vm = v1::CreateVmKpiDirect(inner, uuid.c_str(), ("vm-" + uuid).c_str(), 1'000'000'000ULL, run_ns, wait_ns);
    std::vector<flatbuffers::Offset<v1::VmKpi>> vms{vm};
    inner.Finish(v1::CreateKpiReportDirect(inner, "host-a", seq + 1, 1, 1'000'000'000ULL, t + 1'000'000'000ULL, &vms),
                 "MKPI");
    std::vector<uint8_t> bytes(inner.GetBufferPointer(), inner.GetBufferPointer() + inner.GetSize());
    return apply(
        s, v1::MarketEventBody::KpiUpdate, [&](auto& f) { return v1::CreateKpiUpdateDirect(f, &bytes).Union(); }, o);
  }

  bool alloc(FleetState& s, uint64_t bid, const std::string& uuid, int64_t qty, bool granted) {
    return apply(s, v1::MarketEventBody::AllocationChange, [&](auto& f) {
      auto a = v1::CreateAllocationInfoDirect(f, "host-a", uuid.c_str(), "acme", bid, v1::Resource::cpu, qty, 12);
      return v1::CreateAllocationChangeDirect(f, a, granted, "").Union();
    });
  }

  bool price(FleetState& s, int64_t p, uint64_t tick) {
    return apply(s, v1::MarketEventBody::PriceUpdate, [&](auto& f) {
      std::vector<flatbuffers::Offset<v1::PriceInfo>> ps{
          v1::CreatePriceInfoDirect(f, "host-a", v1::Resource::cpu, v1::BidTier::sla_critical, p, 1000, 300, tick)};
      return v1::CreatePriceUpdateDirect(f, &ps).Union();
    });
  }
};

TEST(DashboardFleetView, KpiEventsBecomeRatesPerVm) {
  FleetState s;
  EventBuilder b;
  EXPECT_FALSE(b.kpi(s, "u1", 600'000'000, 200'000'000));
  ASSERT_EQ(s.vms.count("u1"), 1u);
  auto& k = s.vms["u1"].kpis.back();
  EXPECT_DOUBLE_EQ(k.cpu_pct, 60.0);
  EXPECT_DOUBLE_EQ(k.runq_wait_pct, 25.0);  // 200 / (600 + 200)
  EXPECT_EQ(s.vms["u1"].host, "host-a");
  EXPECT_TRUE(s.vm_set_changed) << "a VM only named by a KPI report asks for a snapshot";
}

TEST(DashboardFleetView, KpiEventWithABadVmShowsTheOtherVms) {
  // A nested report whose middle VM has 5000 CPUs' worth of run time: left out, the two others shown.
  FleetState s;
  EventBuilder b;
  flatbuffers::FlatBufferBuilder inner;
  std::vector<flatbuffers::Offset<v1::VmKpi>> vms{
      v1::CreateVmKpiDirect(inner, "u0", "vm-u0", 1'000'000'000ULL, 500'000'000),
      v1::CreateVmKpiDirect(inner, "u1", "vm-u1", 1'000'000'000ULL, 5000'000'000'000ULL),
      v1::CreateVmKpiDirect(inner, "u2", "vm-u2", 1'000'000'000ULL, 250'000'000)};
  inner.Finish(v1::CreateKpiReportDirect(inner, "host-a", 1, 1, 1'000'000'000ULL, b.t, &vms), "MKPI");
  std::vector<uint8_t> bytes(inner.GetBufferPointer(), inner.GetBufferPointer() + inner.GetSize());
  b.apply(s, v1::MarketEventBody::KpiUpdate, [&](auto& f) { return v1::CreateKpiUpdateDirect(f, &bytes).Union(); });
  EXPECT_EQ(s.vms.count("u1"), 0u);
  ASSERT_EQ(s.vms.count("u0"), 1u);
  ASSERT_EQ(s.vms.count("u2"), 1u);
  EXPECT_DOUBLE_EQ(s.vms["u0"].kpis.back().cpu_pct, 50.0);
  EXPECT_DOUBLE_EQ(s.vms["u2"].kpis.back().cpu_pct, 25.0);
}

TEST(DashboardFleetView, GapAndNewIncarnationAskForResync) {
  FleetState s;
  EventBuilder b;
  EXPECT_FALSE(b.price(s, 10, 1));
  EXPECT_FALSE(b.price(s, 11, 2));
  b.seq += 3;  // three events lost
  EXPECT_TRUE(b.price(s, 12, 3));
  EXPECT_EQ(s.gaps, 1u);
  EXPECT_FALSE(b.price(s, 13, 4));
  b.incarnation = 8;  // controller restarted
  b.seq = 0;
  EXPECT_TRUE(b.price(s, 14, 1));
  EXPECT_EQ(s.incarnation, 8u);
  EXPECT_EQ(s.prices["host-a/cpu/sla_critical"].size(), 5u);
}

TEST(DashboardFleetView, AllocationsGrantedAndRevokedKeepPerVmHistory) {
  FleetState s;
  EventBuilder b;
  b.alloc(s, 1, "u1", 300, true);
  b.alloc(s, 2, "u1", 200, true);
  ASSERT_EQ(s.allocations.size(), 2u);
  b.alloc(s, 1, "u1", 300, false);
  ASSERT_EQ(s.allocations.size(), 1u);
  b.alloc(s, 2, "u1", 0, false);
  EXPECT_TRUE(s.allocations.empty());
  std::vector<int64_t> q;
  for (auto& p : s.vms["u1"].allocated["cpu"]) q.push_back(p.quantity);
  EXPECT_EQ(q, (std::vector<int64_t>{300, 500, 200, 0}));
}

TEST(DashboardFleetView, HistoryIsBounded) {
  FleetState s;
  EventBuilder b;
  FleetViewOptions o;
  o.kpi_history = 4;
  for (int i = 0; i < 10; ++i) b.kpi(s, "u1", 100'000'000ULL * static_cast<uint64_t>(i), 0, o);
  ASSERT_EQ(s.vms["u1"].kpis.size(), 4u);
  EXPECT_DOUBLE_EQ(s.vms["u1"].kpis.front().cpu_pct, 60.0);  // samples 6..9 kept
}

TEST(DashboardFleetView, JsonAndTopShowTheSameState) {
  FleetState s;
  EventBuilder b;
  b.kpi(s, "u1", 500'000'000, 500'000'000);
  b.alloc(s, 9, "u1", 250, true);
  b.price(s, 12, 5);
  auto j = dashboard::state_json(s);
  ASSERT_EQ(j["vms"].size(), 1u);
  EXPECT_EQ(j["vms"][0]["name"], "vm-u1");
  EXPECT_DOUBLE_EQ(j["vms"][0]["latest"]["runq_wait_pct"].get<double>(), 50.0);
  EXPECT_EQ(j["allocations"][0]["quantity"], 250);
  EXPECT_EQ(j["prices"][0]["latest"]["price"], 12);

  auto text = cli::render_top(s, false);
  EXPECT_NE(text.find("vm-u1"), std::string::npos) << text;
  EXPECT_NE(text.find("cpu +250 @12"), std::string::npos) << text;
  EXPECT_NE(text.find("host-a/cpu/sla_critical"), std::string::npos) << text;
  EXPECT_EQ(text.find('\x1b'), std::string::npos);
  auto ansi = cli::render_top(s, true);
  EXPECT_NE(ansi.find("\x1b[33;1m  50.0"), std::string::npos) << "a 50 % wait is highlighted";
}

}  // namespace
}  // namespace morph
