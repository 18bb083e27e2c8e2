// ShiftEngine against a fake of Mechanisms: validation before any change, rollback, idempotency, leases
// with an injected clock, and reconciliation from the state file after a restart.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "hostagent/lease_state/lease_state_file.h"
#include "hostagent/shifter/mechanisms.h"
#include "hostagent/shifter/shift_engine.h"

namespace morph::agent::shifter {
namespace {

using ::testing::_;
using ::testing::HasSubstr;
using ::testing::Invoke;
using ::testing::Return;

// A host with VMs whose values live in memory; what apply sets, read returns.
class HostModel {
 public:
  HostModel() {
    VmTarget t{"uuid-1", "vm1", 2, 1024, 4, "vda", {7}, true};
    InForce f;
    f.cpu_millicores = 2000;
    f.cpu_shares = 1024;
    f.vcpu_pin = "0-3";
    f.memory_mib = 1024;
    vms["uuid-1"] = {t, f};
  }
  Result<VmTarget> resolve(const std::string& vm) {
    for (auto& [uuid, v] : vms)
      if (uuid == vm || v.first.name == vm) return v.first;
    return Error(Errc::not_found, "no domain " + vm);
  }
  Result<InForce> read(const VmTarget& t) { return vms.at(t.uuid).second; }
  Result<std::string> apply(const VmTarget& t, const Adjustment& a) {
    InForce& f = vms.at(t.uuid).second;
    // The resources held as unsigned values; the others by hand below.
    static const std::map<Resource, uint64_t InForce::*> kUnsigned = {
        {Resource::cpu_shares, &InForce::cpu_shares},     {Resource::memory, &InForce::memory_mib},
        {Resource::disk_iops, &InForce::disk_iops},       {Resource::disk_bps, &InForce::disk_bps},
        {Resource::net_out_kbps, &InForce::net_out_kbps}, {Resource::net_in_kbps, &InForce::net_in_kbps}};
    if (auto u = kUnsigned.find(a.resource); u != kUnsigned.end())
      f.*(u->second) = static_cast<uint64_t>(a.value);
    else if (a.resource == Resource::vcpu_pin)
      f.vcpu_pin = a.target;
    else if (a.resource == Resource::cpu)
      f.cpu_millicores = a.value;
    else if (a.resource == Resource::storage_tier)
      f.storage_tier = a.value;
    return std::string{};
  }
  std::map<std::string, std::pair<VmTarget, InForce>> vms;
};

class MockMechanisms : public Mechanisms {
 public:
  MOCK_METHOD(Result<VmTarget>, resolve, (const std::string&), (override));
  MOCK_METHOD(Result<InForce>, read, (const VmTarget&), (override));
  MOCK_METHOD(Result<std::string>, apply, (const VmTarget&, const Adjustment&), (override));
  void delegate_to(HostModel& host) {
    ON_CALL(*this, resolve).WillByDefault(Invoke(&host, &HostModel::resolve));
    ON_CALL(*this, read).WillByDefault(Invoke(&host, &HostModel::read));
    ON_CALL(*this, apply).WillByDefault(Invoke(&host, &HostModel::apply));
  }
};

class ShifterEngineTest : public ::testing::Test {
 protected:
  void SetUp() override { mech.delegate_to(host); }
  ShiftEngine make(ShiftEngine::Options opt = {}) {
    return ShiftEngine(
        mech, [this] { return now; }, std::move(opt));
  }
  InForce& vm1() { return host.vms.at("uuid-1").second; }
  // Command `id` to uuid-1 with a 5 s lease.
  static ShiftOutcome shift_vm1(ShiftEngine& engine, uint64_t id, std::vector<Adjustment> adjustments) {
    return engine.shift({id, "uuid-1", std::move(adjustments), std::chrono::seconds(5)});
  }
  // Applying `r` fails once with `e`; every other apply goes through to the host model.
  void apply_fails_once(Resource r, Error e) {
    EXPECT_CALL(mech, apply).Times(::testing::AnyNumber());
    EXPECT_CALL(mech, apply(_, ::testing::Field(&Adjustment::resource, r)))
        .WillOnce(Return(Result<std::string>(std::move(e))));
  }

  HostModel host;
  ::testing::NiceMock<MockMechanisms> mech;
  TimePoint now = TimePoint(std::chrono::seconds(1'700'000'000));
};

TEST_F(ShifterEngineTest, AppliesInOrderAndReportsWhatIsReadBack) {
  auto engine = make();
  ShiftOutcome out = shift_vm1(engine, 1, {{Resource::cpu, 500, {}}, {Resource::disk_iops, 200, {}}});
  ASSERT_TRUE(out.ok()) << out.error->what();
  EXPECT_EQ(out.vm_uuid, "uuid-1");
  EXPECT_EQ(out.in_force.cpu_millicores, 500);
  EXPECT_EQ(out.in_force.disk_iops, 200u);
  EXPECT_EQ(out.lease_expiry, now + std::chrono::seconds(5));
  EXPECT_EQ(engine.baseline("uuid-1")->cpu_millicores, 2000);
}

TEST_F(ShifterEngineTest, ResolvesByName) {
  auto engine = make();
  ShiftOutcome out = engine.shift({1, "vm1", {{Resource::cpu_shares, 100, {}}}, std::chrono::seconds(5)});
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out.vm_uuid, "uuid-1");
  EXPECT_EQ(vm1().cpu_shares, 100u);
}

struct InvalidCase {
  const char* what;
  std::string vm;
  std::vector<Adjustment> adjustments;
  Errc code;
  const char* message;
};

// A command to uuid-1 that must be refused as an invalid argument, with `message`.
InvalidCase invalid(const char* what, std::vector<Adjustment> adjustments, const char* message) {
  return {what, "uuid-1", std::move(adjustments), Errc::invalid_argument, message};
}

class ShifterValidationTest : public ShifterEngineTest, public ::testing::WithParamInterface<InvalidCase> {};

TEST_P(ShifterValidationTest, RejectsBeforeApplyingAnything) {
  const InvalidCase& c = GetParam();
  auto engine = make();
  const InForce before = vm1();
  EXPECT_CALL(mech, apply).Times(0);
  ShiftOutcome out = engine.shift({42, c.vm, c.adjustments, std::chrono::seconds(5)});
  ASSERT_FALSE(out.ok()) << c.what;
  EXPECT_EQ(out.error->code(), c.code) << out.error->what();
  EXPECT_THAT(out.error->message(), HasSubstr(c.message));
  EXPECT_EQ(vm1(), before);
  EXPECT_FALSE(engine.lease_expiry("uuid-1").has_value());
}

INSTANTIATE_TEST_SUITE_P(
    Table, ShifterValidationTest,
    ::testing::Values(InvalidCase{"unknown vm", "nope", {{Resource::cpu, 500, {}}}, Errc::not_found, "no domain"},
                      // The first adjustment is valid: nothing may be applied when a later one is not.
                      invalid("memory above max", {{Resource::cpu, 500, {}}, {Resource::memory, 2048, {}}},
                              "above the domain's maximum of 1024 MiB"),
                      invalid("negative", {{Resource::disk_iops, -1, {}}}, "negative"),
                      invalid("cpu above vcpus", {{Resource::cpu, 2001, {}}}, "outside 10..2000"),
                      invalid("cpu too small", {{Resource::cpu, 5, {}}}, "outside"),
                      invalid("twice", {{Resource::disk_iops, 1, {}}, {Resource::disk_iops, 2, {}}}, "twice"),
                      invalid("pin beyond host", {{Resource::vcpu_pin, 1, "5"}}, "beyond"),
                      invalid("bad cpu list", {{Resource::vcpu_pin, 1, "1-x"}}, "cpu list"),
                      invalid("no adjustments", {}, "without adjustments"),
                      invalid("storage tier outside any pool", {{Resource::storage_tier, 1, {}}},
                              "neither storage pool")),
    [](const auto& p) {
      std::string n = p.param.what;
      for (char& ch : n)
        if (ch == ' ') ch = '_';
      return n;
    });

TEST_F(ShifterEngineTest, RollsBackAppliedStepsWhenALaterOneFails) {
  auto engine = make();
  const InForce before = vm1();
  apply_fails_once(Resource::memory, Error(Errc::system, "balloon device gone"));
  ShiftOutcome out =
      shift_vm1(engine, 7, {{Resource::cpu, 300, {}}, {Resource::cpu_shares, 50, {}}, {Resource::memory, 512, {}}});
  ASSERT_FALSE(out.ok());
  EXPECT_THAT(out.error->message(), HasSubstr("balloon device gone"));
  EXPECT_THAT(out.error->message(), HasSubstr("cpu_shares rolled back, cpu rolled back"));
  EXPECT_EQ(vm1(), before);
  EXPECT_EQ(out.in_force, before);
  EXPECT_FALSE(engine.lease_expiry("uuid-1").has_value());
}

TEST_F(ShifterEngineTest, RepeatedCommandIdReturnsStoredOutcomeWithoutReapplying) {
  auto engine = make();
  EXPECT_CALL(mech, apply).Times(2);  // cpu and the cpu_shares that follow it, once
  ShiftOutcome first = shift_vm1(engine, 9, {{Resource::cpu, 400, {}}});
  vm1().cpu_millicores = 1234;  // someone else changed it; a repeat must not touch the VM
  ShiftOutcome again = shift_vm1(engine, 9, {{Resource::cpu, 400, {}}});
  EXPECT_TRUE(again.ok());
  EXPECT_EQ(again.in_force.cpu_millicores, 400);
  EXPECT_EQ(again.lease_expiry, first.lease_expiry);
  EXPECT_EQ(vm1().cpu_millicores, 1234);
}

TEST_F(ShifterEngineTest, FailedCommandIsAlsoIdempotent) {
  auto engine = make();
  ShiftOutcome first = shift_vm1(engine, 3, {{Resource::memory, 4096, {}}});
  ASSERT_FALSE(first.ok());
  host.vms.at("uuid-1").first.max_memory_mib = 8192;  // would now pass; the stored answer stands
  ShiftOutcome again = shift_vm1(engine, 3, {{Resource::memory, 4096, {}}});
  EXPECT_FALSE(again.ok());
  EXPECT_EQ(vm1().memory_mib, 1024u);
}

TEST_F(ShifterEngineTest, LeaseExpiryRevertsToBaselineCapturedBeforeFirstShift) {
  auto engine = make();
  const InForce baseline = vm1();
  ASSERT_TRUE(shift_vm1(engine, 1, {{Resource::cpu, 200, {}}}).ok());
  now += std::chrono::seconds(2);
  ASSERT_TRUE(shift_vm1(engine, 2, {{Resource::memory, 512, {}}, {Resource::net_out_kbps, 10000, {}}}).ok());
  EXPECT_EQ(*engine.baseline("uuid-1"), baseline);  // the second shift did not recapture

  now += std::chrono::milliseconds(4999);
  EXPECT_TRUE(engine.expire_due().empty());
  EXPECT_EQ(vm1().memory_mib, 512u);

  now += std::chrono::milliseconds(1);
  auto events = engine.expire_due();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].vm_uuid, "uuid-1");
  EXPECT_EQ(events[0].command_id, 2u);
  EXPECT_EQ(events[0].action, ExpiryPolicy::revert);
  EXPECT_FALSE(events[0].error.has_value());
  EXPECT_EQ(vm1(), baseline);
  EXPECT_EQ(events[0].in_force, baseline);
  EXPECT_FALSE(engine.lease_expiry("uuid-1").has_value());
  // Recorded for the report on reconnect, once.
  EXPECT_EQ(engine.take_events().size(), 1u);
  EXPECT_TRUE(engine.take_events().empty());
}

TEST_F(ShifterEngineTest, RenewByCommandOrVmPostponesExpiry) {
  auto engine = make();
  ASSERT_TRUE(shift_vm1(engine, 5, {{Resource::disk_iops, 100, {}}}).ok());
  now += std::chrono::seconds(4);
  ASSERT_TRUE(engine.renew_command(5, now + std::chrono::seconds(5)).ok());
  now += std::chrono::seconds(4);
  EXPECT_TRUE(engine.expire_due().empty());
  ASSERT_TRUE(engine.renew_vm("uuid-1", now + std::chrono::seconds(5)).ok());
  now += std::chrono::seconds(4);
  EXPECT_TRUE(engine.expire_due().empty());
  EXPECT_EQ(vm1().disk_iops, 100u);
  now += std::chrono::seconds(1);
  EXPECT_EQ(engine.expire_due().size(), 1u);
  EXPECT_EQ(vm1().disk_iops, 0u);
  EXPECT_EQ(engine.renew_command(5, now + std::chrono::seconds(5)).error().code(), Errc::not_found);
  EXPECT_EQ(engine.renew_vm("uuid-1", now).error().code(), Errc::not_found);
}

TEST_F(ShifterEngineTest, HoldPolicyKeepsValuesAtExpiry) {
  auto engine = make({.on_expiry = ExpiryPolicy::hold});
  ASSERT_TRUE(engine.shift({1, "uuid-1", {{Resource::cpu, 250, {}}}, std::chrono::seconds(1)}).ok());
  now += std::chrono::seconds(1);
  auto events = engine.expire_due();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].action, ExpiryPolicy::hold);
  EXPECT_EQ(vm1().cpu_millicores, 250);
  EXPECT_EQ(events[0].in_force.cpu_millicores, 250);
}

TEST_F(ShifterEngineTest, ControllerLossEndsEveryLeaseNow) {
  auto engine = make();
  ASSERT_TRUE(engine.shift({1, "uuid-1", {{Resource::cpu, 250, {}}}, std::chrono::seconds(60)}).ok());
  auto events = engine.controller_lost();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(vm1().cpu_millicores, 2000);
}

TEST_F(ShifterEngineTest, AVmThatLeftTheHostIsForgottenWithoutARevert) {
  auto engine = make();
  ASSERT_TRUE(shift_vm1(engine, 1, {{Resource::cpu, 1500, {}}}).ok());
  // Still here: kept. libvirtd not answering is no reason to forget it either.
  EXPECT_TRUE(engine.forget_departed().empty());
  EXPECT_CALL(mech, resolve("uuid-1")).WillOnce(Return(Result<VmTarget>(Error(Errc::unavailable, "libvirtd gone"))));
  EXPECT_TRUE(engine.forget_departed().empty());
  ASSERT_TRUE(engine.lease_expiry("uuid-1"));
  // Migrated away: nothing of it may be touched any more, now or when its lease would have run out.
  host.vms.erase("uuid-1");
  EXPECT_CALL(mech, resolve("uuid-1")).WillRepeatedly(Invoke(&host, &HostModel::resolve));
  EXPECT_CALL(mech, apply).Times(0);
  EXPECT_THAT(engine.forget_departed(), ::testing::ElementsAre("uuid-1"));
  EXPECT_FALSE(engine.lease_expiry("uuid-1"));
  EXPECT_FALSE(engine.baseline("uuid-1"));
  EXPECT_EQ(engine.renew_command(1, now + std::chrono::seconds(5)).error().code(), Errc::not_found);
  now += std::chrono::seconds(10);
  EXPECT_TRUE(engine.expire_due().empty());
  EXPECT_TRUE(engine.controller_lost().empty());
  EXPECT_TRUE(engine.in_force_report().empty());
}

TEST_F(ShifterEngineTest, RevertFailureIsReported) {
  auto engine = make();
  ASSERT_TRUE(engine.shift({1, "uuid-1", {{Resource::cpu, 250, {}}}, std::chrono::seconds(1)}).ok());
  // The first revert step (cpu) fails; the cpu_shares that followed it still go back.
  EXPECT_CALL(mech, apply)
      .WillOnce(Return(Result<std::string>(Error(Errc::not_found, "domain vanished"))))
      .WillRepeatedly(Return(Result<std::string>(std::string{})));
  now += std::chrono::seconds(2);
  auto events = engine.expire_due();
  ASSERT_EQ(events.size(), 1u);
  ASSERT_TRUE(events[0].error.has_value());
  EXPECT_THAT(events[0].error->message(), HasSubstr("cpu: domain vanished"));
}

// CPU weight follows CPU quota (docs/architecture.md, Shifting): the rule itself.
TEST(ShifterCpuShares, ScaleWithMillicoresFromTheBaseline) {
  InForce base;
  base.cpu_millicores = 600;
  base.cpu_shares = 1024;
  EXPECT_EQ(cpu_shares_following(base, 600), 1024);  // the baseline's own value gives its shares back
  EXPECT_EQ(cpu_shares_following(base, 800), 1365);  // +200 mc on 600: 1024 x 4/3, rounded to nearest
  EXPECT_EQ(cpu_shares_following(base, 1000), 1707);
  EXPECT_EQ(cpu_shares_following(base, 300), 1024);  // a cap below the baseline keeps the baseline weight
  EXPECT_EQ(cpu_shares_following(base, 10), 1024);
  base.cpu_shares = 1;
  EXPECT_EQ(cpu_shares_following(base, 600), 2);  // never below cgroup v1's minimum
  base.cpu_shares = 200000;
  EXPECT_EQ(cpu_shares_following(base, 6000), 262144);  // nor above its maximum
  base.cpu_shares = 0;
  EXPECT_FALSE(cpu_shares_following(base, 800));  // nothing to scale from
  base.cpu_shares = 1024;
  base.cpu_millicores = 0;
  EXPECT_FALSE(cpu_shares_following(base, 800));
}

class ShifterCpuSharesTest : public ShifterEngineTest {
 protected:
  void SetUp() override {
    ShifterEngineTest::SetUp();
    vm1().cpu_millicores = 1200;  // a <cputune>-capped baseline: 2 vCPUs at 60 %
    vm1().cpu_shares = 1024;
  }
};

TEST_F(ShifterCpuSharesTest, CpuShiftRaisesSharesInProportionAndRevertRestoresBoth) {
  auto engine = make();
  const InForce baseline = vm1();
  ShiftOutcome out = shift_vm1(engine, 1, {{Resource::cpu, 1600, {}}});
  ASSERT_TRUE(out.ok()) << out.error->what();
  EXPECT_EQ(out.in_force.cpu_millicores, 1600);
  EXPECT_EQ(out.in_force.cpu_shares, 1365u);  // read back, 1024 x 1600 / 1200
  // A later change scales from the baseline captured before the first shift, not from what is in force.
  out = shift_vm1(engine, 2, {{Resource::cpu, 1800, {}}});
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(vm1().cpu_shares, 1536u);
  EXPECT_EQ(engine.baseline("uuid-1")->cpu_shares, 1024u);
  // Lease expiry puts both the quota and the weight back.
  now += std::chrono::seconds(5);
  auto events = engine.expire_due();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_FALSE(events[0].error.has_value());
  EXPECT_EQ(vm1(), baseline);
  EXPECT_EQ(events[0].in_force.cpu_shares, 1024u);
}

TEST_F(ShifterCpuSharesTest, AllocationEndingSendsTheBaselineAndGetsTheBaselineSharesBack) {
  auto engine = make();
  const InForce baseline = vm1();
  ASSERT_TRUE(shift_vm1(engine, 1, {{Resource::cpu, 2000, {}}}).ok());
  EXPECT_EQ(vm1().cpu_shares, 1707u);
  // The controller's "back to the baseline" command, before the lease runs out.
  ASSERT_TRUE(shift_vm1(engine, 2, {{Resource::cpu, 1200, {}}}).ok());
  EXPECT_EQ(vm1(), baseline);
}

TEST_F(ShifterCpuSharesTest, CapBelowTheBaselineKeepsTheBaselineWeight) {
  auto engine = make();
  ASSERT_TRUE(shift_vm1(engine, 1, {{Resource::cpu, 1600, {}}}).ok());
  EXPECT_EQ(vm1().cpu_shares, 1365u);
  ASSERT_TRUE(shift_vm1(engine, 2, {{Resource::cpu, 400, {}}}).ok());
  EXPECT_EQ(vm1().cpu_millicores, 400);
  EXPECT_EQ(vm1().cpu_shares, 1024u);
}

TEST_F(ShifterCpuSharesTest, ControllerLossRevertsTheSharesToo) {
  auto engine = make();
  ASSERT_TRUE(engine.shift({1, "uuid-1", {{Resource::cpu, 1500, {}}}, std::chrono::seconds(60)}).ok());
  EXPECT_EQ(vm1().cpu_shares, 1280u);
  ASSERT_EQ(engine.controller_lost().size(), 1u);
  EXPECT_EQ(vm1().cpu_millicores, 1200);
  EXPECT_EQ(vm1().cpu_shares, 1024u);
}

TEST_F(ShifterCpuSharesTest, ExplicitSharesWinAndTheOptionTurnsItOff) {
  {
    auto engine = make();
    ASSERT_TRUE(shift_vm1(engine, 1, {{Resource::cpu, 1600, {}}, {Resource::cpu_shares, 300, {}}}).ok());
    EXPECT_EQ(vm1().cpu_shares, 300u);
    now += std::chrono::seconds(5);
    engine.expire_due();
  }
  ShiftEngine::Options opt;
  opt.shares_follow_cpu = false;
  auto engine = make(opt);
  EXPECT_CALL(mech, apply).Times(1);
  ASSERT_TRUE(shift_vm1(engine, 2, {{Resource::cpu, 1600, {}}}).ok());
  EXPECT_EQ(vm1().cpu_millicores, 1600);
  EXPECT_EQ(vm1().cpu_shares, 1024u);
}

TEST_F(ShifterCpuSharesTest, FailedSharesRollTheQuotaBack) {
  auto engine = make();
  const InForce before = vm1();
  apply_fails_once(Resource::cpu_shares, Error(Errc::invalid_argument, "shares out of range"));
  ShiftOutcome out = shift_vm1(engine, 1, {{Resource::cpu, 1600, {}}});
  ASSERT_FALSE(out.ok());
  EXPECT_THAT(out.error->message(), HasSubstr("applying cpu_shares=1365"));
  EXPECT_THAT(out.error->message(), HasSubstr("cpu rolled back"));
  EXPECT_EQ(vm1(), before);
  EXPECT_FALSE(engine.lease_expiry("uuid-1").has_value());
}

class ShifterRestartTest : public ShifterEngineTest {
 protected:
  void TearDown() override { std::filesystem::remove(state); }
  // One command under a 5 s lease, then the agent stops: the values stay in force.
  void shift_then_stop(std::vector<Adjustment> adjustments) {
    auto engine = make({.store = file()});
    ASSERT_TRUE(shift_vm1(engine, 1, std::move(adjustments)).ok());
  }
  // A new agent 10 s later: reconcile finds the lease expired and reverts the VM to `baseline`.
  // What the engine of an agent started again on the same state file finds in reconcile().
  Result<std::vector<LeaseEvent>> reconcile_after_restart() {
    auto engine = make({.store = file()});
    return engine.reconcile();
  }
  void expect_reverted_after_restart(const InForce& baseline) {
    now += std::chrono::seconds(10);
    auto events = reconcile_after_restart();
    ASSERT_TRUE(events.ok()) << events.error().what();
    ASSERT_EQ(events->size(), 1u);
    EXPECT_EQ(vm1(), baseline);
  }
  std::string state = ::testing::TempDir() + "shifter_state_" + std::to_string(getpid()) + ".json";
  std::shared_ptr<LeaseStore> file() { return std::make_shared<LeaseStateFile>(state); }
};

TEST_F(ShifterRestartTest, ExpiredLeaseWhileDownIsRevertedOnReconcile) {
  const InForce baseline = vm1();
  shift_then_stop({{Resource::cpu, 200, {}}, {Resource::disk_bps, 1'000'000, {}}});
  EXPECT_EQ(vm1().cpu_millicores, 200);
  expect_reverted_after_restart(baseline);
}

// A state file written before the one Resource enum names what it shifted cpu_millicores and memory_mib:
// a restarted agent still reads those names and reverts the VM.
TEST_F(ShifterRestartTest, StateFileWithTheOlderResourceNamesStillReverts) {
  const InForce baseline = vm1();
  shift_then_stop({{Resource::cpu, 200, {}}, {Resource::memory, 512, {}}});
  nlohmann::json j;
  {
    std::ifstream in(state);
    j = nlohmann::json::parse(in);
  }
  auto& shifted = j["vms"][0]["shifted"];
  ASSERT_EQ(shifted, nlohmann::json::array({"cpu", "memory", "cpu_shares"}));
  shifted = nlohmann::json::array({"cpu_millicores", "memory_mib", "cpu_shares"});
  std::ofstream(state) << j.dump();
  EXPECT_EQ(vm1().cpu_millicores, 200);
  expect_reverted_after_restart(baseline);
}

TEST_F(ShifterRestartTest, RunningLeaseSurvivesRestartWithItsBaseline) {
  const InForce baseline = vm1();
  {
    auto engine = make({.store = file()});
    ASSERT_TRUE(engine.shift({1, "uuid-1", {{Resource::cpu, 200, {}}}, std::chrono::seconds(30)}).ok());
  }
  now += std::chrono::seconds(10);
  auto engine = make({.store = file()});
  auto events = engine.reconcile();
  ASSERT_TRUE(events.ok());
  EXPECT_TRUE(events->empty());
  EXPECT_EQ(engine.lease_expiry("uuid-1"), now + std::chrono::seconds(20));
  EXPECT_EQ(*engine.baseline("uuid-1"), baseline);
  now += std::chrono::seconds(20);
  EXPECT_EQ(engine.expire_due().size(), 1u);
  EXPECT_EQ(vm1(), baseline);
}

// A kill while a command is being applied: the state file as it was on disk at that moment (copied from
// inside the second apply, after the first changed the VM) must let a restarted agent revert the VM.
TEST_F(ShifterRestartTest, KilledMidApplyStillRevertsAfterRestart) {
  const InForce baseline = vm1();
  const std::string at_kill = state + ".at-kill";
  {
    auto engine = make({.store = file()});
    int calls = 0;
    EXPECT_CALL(mech, apply).WillRepeatedly(Invoke([&](const VmTarget& t, const Adjustment& a) {
      if (++calls == 2) std::filesystem::copy_file(state, at_kill, std::filesystem::copy_options::overwrite_existing);
      return host.apply(t, a);
    }));
    ASSERT_TRUE(shift_vm1(engine, 1, {{Resource::cpu, 200, {}}, {Resource::disk_iops, 50, {}}}).ok());
  }
  ASSERT_TRUE(std::filesystem::exists(at_kill)) << "the state file was not written before the first apply";
  std::filesystem::rename(at_kill, state);
  ::testing::Mock::VerifyAndClearExpectations(&mech);
  mech.delegate_to(host);
  EXPECT_EQ(vm1().cpu_millicores, 200);
  now += std::chrono::seconds(6);
  auto events = reconcile_after_restart();
  ASSERT_TRUE(events.ok()) << events.error().what();
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].command_id, 1u);
  EXPECT_EQ(vm1(), baseline);
}

TEST_F(ShifterRestartTest, FailedCommandLeavesThePreviousRecord) {
  auto engine = make({.store = file()});
  ASSERT_TRUE(engine.shift({1, "uuid-1", {{Resource::cpu, 500, {}}}, std::chrono::seconds(30)}).ok());
  apply_fails_once(Resource::disk_iops, Error(Errc::system, "blkiotune failed"));
  ShiftOutcome out =
      engine.shift({2, "uuid-1", {{Resource::cpu, 700, {}}, {Resource::disk_iops, 50, {}}}, std::chrono::seconds(60)});
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(vm1().cpu_millicores, 500);  // rolled back to what command 1 set
  // The record is command 1's: its lease, and disk_iops is not marked shifted.
  EXPECT_EQ(engine.lease_expiry("uuid-1"), now + std::chrono::seconds(30));
  auto restarted = make({.store = file()});
  ASSERT_TRUE(restarted.reconcile().ok());
  EXPECT_EQ(restarted.lease_expiry("uuid-1"), now + std::chrono::seconds(30));
  now += std::chrono::seconds(31);
  auto events = restarted.expire_due();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].command_id, 1u);
  EXPECT_EQ(vm1().cpu_millicores, 2000);
}

TEST_F(ShifterRestartTest, FailedFirstCommandLeavesNoRecord) {
  auto engine = make({.store = file()});
  apply_fails_once(Resource::disk_iops, Error(Errc::system, "blkiotune failed"));
  ASSERT_FALSE(shift_vm1(engine, 1, {{Resource::cpu, 700, {}}, {Resource::disk_iops, 50, {}}}).ok());
  EXPECT_FALSE(engine.lease_expiry("uuid-1").has_value());
  auto restarted = make({.store = file()});
  ASSERT_TRUE(restarted.reconcile().ok());
  EXPECT_FALSE(restarted.lease_expiry("uuid-1").has_value());
}

// A state file that is not the format (here: records that are not objects, a field of the wrong type) is
// refused at reconcile, naming the file; the agent logs it and starts without the old leases.
TEST_F(ShifterRestartTest, MalformedStateFileIsRefusedNamingIt) {
  for (const char* text :
       {"not json", "{\"version\": 1}", "{\"vms\": [1, 2]}", "{\"vms\": [{\"uuid\": \"uuid-1\", \"shifted\": [7]}]}"}) {
    std::ofstream(state) << text;
    auto engine = make({.store = file()});
    auto events = engine.reconcile();
    ASSERT_FALSE(events.ok()) << text;
    EXPECT_EQ(events.error().code(), Errc::protocol) << text;
    EXPECT_THAT(events.error().message(), HasSubstr(state)) << text;
    EXPECT_FALSE(engine.lease_expiry("uuid-1").has_value()) << text;
  }
}

TEST(ShifterCpuList, ParsesAndFormats) {
  EXPECT_EQ(*parse_cpu_list("0-2,5"), 0b100111u);
  EXPECT_EQ(format_cpu_list(0b100111u), "0-2,5");
  EXPECT_EQ(format_cpu_list(0b1010u), "1,3");
  EXPECT_FALSE(parse_cpu_list("").ok());
  EXPECT_FALSE(parse_cpu_list("3-1").ok());
  EXPECT_FALSE(parse_cpu_list("64").ok());
}

}  // namespace
}  // namespace morph::agent::shifter
