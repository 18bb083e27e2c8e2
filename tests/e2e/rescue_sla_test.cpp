// SLA rescue on the test bed: three CPU-bound VMs (1 vCPU each, load 100 %) on a 2-core host, a real
// `morph-agent run` (inventory, BPF probes, shifting engine) and the controller's real code in this
// process (ControllerServer + MarketService: ledger, tick loop, rescue). The tenant's VM has an SLA
// policy; the contention pushes its run-queue wait share over the threshold, so:
//   - a rescue bid (tier sla, marked rescue) is raised on the owner's behalf and wins an allocation;
//   - the agent applies the ShiftCommand (cpu = baseline + increment) and reports it applied;
//   - the ledger charges the owner for it;
//   - the VM's run-queue wait share falls below what it was before the rescue.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <sstream>

#include "api_reply_generated.h"
#include "common/msg/api_client.h"
#include "common/msg/wire.h"
#include "controller/api/controller_server.h"
#include "controller/market_service/market_service.h"
#include "tests/integration/agent_run_support.h"
#include "tests/support/requirements.h"

namespace morph {
namespace {

using namespace std::chrono_literals;

std::string sh(const std::string& cmd, int* status) {
  std::string out;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!p) {
    *status = -1;
    return out;
  }
  std::array<char, 4096> buf{};
  while (size_t n = std::fread(buf.data(), 1, buf.size(), p)) out.append(buf.data(), n);
  *status = ::pclose(p);
  return out;
}

// The KPIs the controller ingested for one VM, kept here as well (a second KpiObserver behind the market).
class KpiTap final : public controller::KpiObserver {
 public:
  KpiTap(std::shared_ptr<controller::MarketService> m, std::string uuid) : market_(std::move(m)), uuid_(std::move(uuid)) {}
  void on_kpi_report(const v1::KpiReport& r, uint64_t received) override {
    market_->on_kpi_report(r, received);
    if (!r.vms()) return;
    for (const auto* k : *r.vms())
      if (k->uuid() && k->uuid()->str() == uuid_) {
        std::lock_guard lk(mu_);
        double total = double(k->cpu_run_ns() + k->cpu_wait_ns());
        wait_share_.push_back(total > 0 ? double(k->cpu_wait_ns()) / total : 0.0);
      }
  }
  // Mean wait share of the last n intervals.
  double recent(size_t n) {
    std::lock_guard lk(mu_);
    if (wait_share_.empty()) return -1;
    n = std::min(n, wait_share_.size());
    double s = 0;
    for (size_t i = wait_share_.size() - n; i < wait_share_.size(); ++i) s += wait_share_[i];
    return s / double(n);
  }
  size_t count() {
    std::lock_guard lk(mu_);
    return wait_share_.size();
  }

 private:
  std::shared_ptr<controller::MarketService> market_;
  std::string uuid_;
  std::mutex mu_;
  std::vector<double> wait_share_;
};

TEST(RescueE2e, SlaVmUnderContentionIsRescuedAndItsRunQueueWaitFalls) {
  MORPH_REQUIRE_ROOT();
  MORPH_REQUIRE_BPF();
  MORPH_REQUIRE_LIBVIRTD();
  const std::string tb = test::source_dir() + "/scripts/testbed";
  const std::string prefix = "rescue-" + std::to_string(getpid());
  int st = 0;
  std::string out = sh(tb + " up 3 --prefix " + prefix + " --owners tenant,other,other --cpu-baseline 600", &st);
  struct Down {
    std::string cmd;
    ~Down() {
      int s = 0;
      sh(cmd, &s);
    }
  } down{tb + " down --prefix " + prefix};
  ASSERT_EQ(st, 0) << "scripts/testbed up failed (run scripts/testbed prepare first?): " << out;
  // VM UUID ... per line.
  std::vector<std::pair<std::string, std::string>> vms;
  std::istringstream ls(sh(tb + " ls --prefix " + prefix, &st));
  for (std::string line; std::getline(ls, line);) {
    std::istringstream f(line);
    std::string name, uuid;
    if (f >> name >> uuid && name.rfind(prefix + "-vm", 0) == 0) vms.push_back({name, uuid});
  }
  ASSERT_EQ(vms.size(), 3u) << out;
  const std::string sla_vm = vms[0].second;
  for (auto& [name, uuid] : vms) {
    std::string o = sh(tb + " load " + name + " cpu=100", &st);
    ASSERT_EQ(st, 0) << name << ": " << o;
  }

  auto dir = std::filesystem::temp_directory_path() / ("morph-rescue-e2e-" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::filesystem::permissions(dir, std::filesystem::perms::owner_all, std::filesystem::perm_options::replace);
  const std::string run = (dir / "run").string();

  controller::MarketServiceConfig mc;
  mc.tick = 500ms;
  mc.lease = 3s;
  mc.ledger_path = (dir / "ledger.db").string();
  mc.market.set_reserve(market::Resource::cpu, 1);
  auto opened = controller::MarketService::open(mc);
  ASSERT_TRUE(opened) << opened.error().what();
  auto market = *opened;
  auto tap = std::make_shared<KpiTap>(market, sla_vm);
  controller::ControllerConfig cc;
  cc.endpoints = {"ipc://" + run + "/ingest", "ipc://" + run + "/control", "ipc://" + run + "/api",
                  "ipc://" + run + "/events"};
  cc.kpi_observer = tap;
  controller::ControllerServer server(cc, market);
  market->attach(&server);
  ASSERT_TRUE(server.start());
  market->start();
  test::AgentProcess agent({test::binary_dir() + "/hostagent/morph-agent", "run", "--host", "bed", "--ingest",
                            cc.endpoints.ingest, "--control", cc.endpoints.control, "--interval", "500ms",
                            "--metrics-listen", "", "--lease-state-file", (dir / "leases.json").string()},
                           (dir / "agent.out").string());
  ASSERT_TRUE(test::wait_until([&] { return server.stats().hosts_up >= 1 || !agent.alive(); }, 30s)) << agent.log();

  zmq::context_t zctx;
  msg::ApiClient api(zctx, cc.endpoints.api, {});
  ASSERT_TRUE(api.connect());
  auto call = [&](v1::ApiRequestBody type, std::function<flatbuffers::Offset<void>(flatbuffers::FlatBufferBuilder&)> b) {
    auto m = api.call(type, b, 5s);
    EXPECT_TRUE(m) << (m ? "" : m.error().what());
    return m;
  };
  auto reply_of = [](const zmq::message_t& m) { return flatbuffers::GetRoot<v1::ApiReply>(m.data()); };
  for (const char* a : {"tenant", "other"}) {
    auto m = call(v1::ApiRequestBody::AccountCreate, [&](auto& b) { return v1::CreateAccountCreateDirect(b, a).Union(); });
    ASSERT_TRUE(m && !reply_of(*m)->error()) << a;
    m = call(v1::ApiRequestBody::AccountDeposit,
             [&](auto& b) { return v1::CreateAccountDepositDirect(b, a, 1'000'000'000, "e2e").Union(); });
    ASSERT_TRUE(m && !reply_of(*m)->error()) << a;
  }

  // The contention before any rescue: the SLA VM waits for a CPU a good part of the time.
  ASSERT_TRUE(test::wait_until([&] { return tap->count() >= 10; }, 30s));
  const double before = tap->recent(8);
  std::cout << "run-queue wait share before rescue: " << before << "\n";
  ASSERT_GT(before, 0.15) << "three CPU-bound VMs on 2 cores should contend";

  // The market has CPU to sell on this host: capacity minus the VMs' baselines (their <cputune> quotas).
  // A quote answers whether or not any bid exists yet (price rows only exist for books with bids).
  int64_t available = 0;
  ASSERT_TRUE(test::wait_until([&] {
    auto m = call(v1::ApiRequestBody::QuoteQuery, [&](auto& b) {
      return v1::CreateQuoteQueryDirect(b, sla_vm.c_str(), "bed", v1::Resource::cpu, v1::BidTier::sla_critical, 100)
          .Union();
    });
    auto* q = m ? reply_of(*m)->body_as_QuoteReply() : nullptr;
    available = q ? q->available() : 0;
    return available > 0;
  }, 10s)) << "host cpu supply is 0: capacity minus the VMs' baselines leaves nothing for a rescue to buy";

  // The SLA policy: rescue when the wait share is over 15 % for 3 intervals.
  {
    auto m = call(v1::ApiRequestBody::PolicySet, [&](auto& b) {
      auto vm = b.CreateString(sla_vm);
      v1::PolicySetBuilder pb(b);
      pb.add_vm_uuid(vm);
      pb.add_rescue(true);
      pb.add_runq_wait_permille(150);
      pb.add_max_price_ucredits(100);
      return pb.Finish().Union();
    });
    ASSERT_TRUE(m && !reply_of(*m)->error()) << (m && reply_of(*m)->error() ? reply_of(*m)->error()->message()->str() : "");
  }
  uint64_t bid = 0;
  ASSERT_TRUE(test::wait_until([&] {
    auto m = call(v1::ApiRequestBody::BidList, [&](auto& b) { return v1::CreateBidListDirect(b, "tenant", sla_vm.c_str()).Union(); });
    auto* l = m ? reply_of(*m)->body_as_BidListReply() : nullptr;
    if (!l || !l->bids()) return false;
    for (const auto* x : *l->bids())
      if (x->rescue() && x->tier() == v1::BidTier::sla_critical) bid = x->bid_id();
    return bid != 0;
  }, 30s));
  // It wins, and the agent applies the raised cpu.
  ASSERT_TRUE(test::wait_until([&] {
    auto m = call(v1::ApiRequestBody::AllocationsQuery,
                  [&](auto& b) { return v1::CreateAllocationsQueryDirect(b, "", sla_vm.c_str(), "").Union(); });
    auto* a = m ? reply_of(*m)->body_as_AllocationsReply() : nullptr;
    return a && a->allocations() && a->allocations()->size() == 1 && a->allocations()->Get(0)->bid_id() == bid;
  }, 10s));
  ASSERT_TRUE(test::wait_until([&] {
    auto m = call(v1::ApiRequestBody::ShiftsQuery, [](auto& b) { return v1::CreateShiftsQueryDirect(b, "bed", 50).Union(); });
    auto* s = m ? reply_of(*m)->body_as_ShiftsReply() : nullptr;
    if (!s || !s->shifts()) return false;
    for (const auto* x : *s->shifts())
      if (x->vm_uuid()->str() == sla_vm && x->phase()->str() == "applied") return true;
    return false;
  }, 10s)) << agent.log();
  // Charged in the ledger.
  ASSERT_TRUE(test::wait_until([&] {
    auto m = call(v1::ApiRequestBody::LedgerQuery, [](auto& b) { return v1::CreateLedgerQueryDirect(b, "tenant", 0, 100).Union(); });
    auto* l = m ? reply_of(*m)->body_as_LedgerReply() : nullptr;
    if (!l || !l->entries()) return false;
    for (const auto* e : *l->entries())
      if (e->kind()->str() == "charge" && e->bid_id() == bid && e->amount_ucredits() < 0) return true;
    return false;
  }, 10s));
  // The wait falls.
  const size_t at = tap->count();
  ASSERT_TRUE(test::wait_until([&] { return tap->count() >= at + 10; }, 30s));
  const double after = tap->recent(8);
  std::cout << "run-queue wait share after rescue: " << after << "\n";
  EXPECT_LT(after, before * 0.7);

  market->stop();
  server.stop();
  agent.stop(SIGTERM);
  for (auto& [name, uuid] : vms) sh(tb + " load " + name + " cpu=0", &st);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace morph
