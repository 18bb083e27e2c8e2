// `morph-agent migrate` on the two-host test bed (scripts/testbed up --hosts 2): a real TCG guest moves to
// the second libvirtd and back, and every fault the issue names ends with a clear error, the VM running on
// exactly one host and nothing of it on the other (virsh on both): an unknown destination, the VM's own
// host, a VM not on the host, a VM already migrating, a destination whose libvirtd is killed mid-way (and
// whose restarted daemon is then checked), a timeout, and a cancel (SIGINT).
#include <gtest/gtest.h>
#include <signal.h>

#include <nlohmann/json.hpp>

#include "tests/e2e/migration_bed.h"
#include "tests/support/daemons.h"
#include "tests/support/wait.h"

namespace morph {
namespace {

using namespace std::chrono_literals;

struct MigrateCliE2e : test::OnTestbed<MigrateCliE2e> {
  static test::BedSpec bed_spec() { return test::MigrationBed::spec("mcli"); }
  void SetUpOnBed() override {
    mig = std::make_unique<test::MigrationBed>(bed());
    // Every test starts and must end with the VM on exactly one host, the first.
    ASSERT_EQ(mig->only_host(mig->vm()), 1) << where();
  }
  void TearDownOnBed() override {
    EXPECT_EQ(mig->only_host(mig->vm()), 1) << where();
    EXPECT_EQ(mig->qemu_processes(mig->vm()), 1) << "QEMU processes of " << mig->vm();
    EXPECT_TRUE(mig->kernel_faults(1).empty()) << mig->kernel_faults(1).front();
    EXPECT_EQ(mig->boots(1), 1) << "the guest rebooted";
  }
  std::string where() const {
    std::string s;
    for (auto& [h, state] : mig->where(mig->vm())) s += "host " + std::to_string(h) + ": " + state + "; ";
    return s.empty() ? "on no host" : s;
  }
  // A migration that runs long enough to be caught in the middle: its stream capped at 1 MiB/s.
  static std::vector<std::string> slow() { return {"--bandwidth", "1", "--timeout", "5m"}; }

  std::unique_ptr<test::MigrationBed> mig;
};

TEST_F(MigrateCliE2e, MovesThereAndBackWithTheFigures) {
  for (auto [from, to] : {std::pair{1, 2}, std::pair{2, 1}}) {
    auto r = mig->migrate(1, from, to);
    ASSERT_EQ(r.rc, 0) << r.err;
    auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["uuid"], mig->uuid());
    EXPECT_GT(j["total_ms"].get<uint64_t>(), 0u);
    EXPECT_GT(j["bytes"].get<uint64_t>(), 1u << 20);  // the guest's memory went over
    EXPECT_LE(j["downtime_ms"].get<uint64_t>(), j["total_ms"].get<uint64_t>());
    EXPECT_EQ(mig->only_host(mig->vm()), to) << where();
    std::cout << "host " << from << " -> " << to << ": " << r.out;
  }
}

// A shift in force moves with the VM, its definition (the baseline a HostHello reports) does not change.
TEST_F(MigrateCliE2e, AShiftedVmArrivesWithItsValuesInForceAndItsDefinitionUnchanged) {
  const std::string agent = test::program("hostagent/morph-agent");
  auto shift = mig->run({agent, "shift", mig->vm(), "cpu", "500", "--connect", mig->uri(1)});
  ASSERT_EQ(shift.rc, 0) << shift.out << shift.err;
  const std::string shifted = "<quota>50000</quota>";
  auto xml = [&](int host, bool defined) {
    std::vector<std::string> argv{"/usr/bin/virsh", "-c", mig->uri(host), "dumpxml", mig->vm()};
    if (defined) argv.push_back("--inactive");
    return mig->run(argv).out;
  };
  ASSERT_NE(xml(1, false).find(shifted), std::string::npos) << xml(1, false);
  const std::string definition = xml(1, true);
  ASSERT_EQ(definition.find(shifted), std::string::npos) << definition;
  ASSERT_EQ(mig->migrate(1, 1, 2).rc, 0);
  EXPECT_NE(xml(2, false).find(shifted), std::string::npos) << "the shift did not move with the VM";
  EXPECT_EQ(xml(2, true).find(shifted), std::string::npos) << "the live values became the definition:\n"
                                                           << xml(2, true);
  ASSERT_EQ(mig->migrate(1, 2, 1).rc, 0);
  EXPECT_EQ(xml(1, true).find(shifted), std::string::npos);
  // A full vCPU again for the tests after this one.
  EXPECT_EQ(mig->run({agent, "shift", mig->vm(), "cpu", "1000", "--connect", mig->uri(1)}).rc, 0);
}

TEST_F(MigrateCliE2e, AnUnknownDestinationIsRefused) {
  auto r = mig->run({test::program("hostagent/morph-agent"), "migrate", mig->vm(), "--connect", mig->uri(1), "--to",
                     "qemu+unix:///system?socket=/nonexistent/libvirt-sock", "--unsafe"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("does not answer"), std::string::npos) << r.err;
}

TEST_F(MigrateCliE2e, TheVmsOwnHostIsRefused) {
  auto r = mig->migrate(1, 1, 1);
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("is this host"), std::string::npos) << r.err;
}

TEST_F(MigrateCliE2e, AVmNotOnTheHostIsRefused) {
  auto r = mig->migrate(1, 2, 1);  // asks the second host, which does not have it
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("is not on this host"), std::string::npos) << r.err;
  auto none = mig->run({test::program("hostagent/morph-agent"), "migrate", "no-such-vm", "--connect", mig->uri(1),
                        "--to", mig->uri(2), "--unsafe"});
  EXPECT_EQ(none.rc, 1);
  EXPECT_NE(none.err.find("VM no-such-vm is not on this host"), std::string::npos) << none.err;
}

TEST_F(MigrateCliE2e, AVmAlreadyMigratingIsRefusedAndCtrlCCancels) {
  test::ChildProcess first(mig->migrate_argv(1, 1, 2, slow()), mig->scratch("first"));
  ASSERT_TRUE(test::wait_until([&] { return first.err().find("migrating " + mig->vm()) != std::string::npos; }, 60s))
      << first.err();
  auto second = mig->migrate(1, 1, 2);
  EXPECT_EQ(second.rc, 1);
  EXPECT_NE(second.err.find("a migration of VM " + mig->vm() + " runs already"), std::string::npos) << second.err;
  EXPECT_EQ(first.stop(SIGINT, 60s), 1);  // Ctrl-C
  EXPECT_NE(first.err().find("cancelled; the VM runs on this host"), std::string::npos) << first.err();
}

TEST_F(MigrateCliE2e, ATimeoutAbortsAndTheVmStays) {
  auto args = slow();
  args[3] = "3s";  // --timeout
  auto r = mig->migrate(1, 1, 2, args);
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("timed out after 3000 ms and aborted; the VM runs on this host"), std::string::npos) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["code"], "unavailable");
}

TEST_F(MigrateCliE2e, ADestinationDaemonKilledMidWayLeavesTheVmOnTheSourceAndNothingThere) {
  const std::string pid = mig->host_env(2, "H_LIBVIRTD_PID");
  ASSERT_FALSE(pid.empty());
  test::ChildProcess moving(mig->migrate_argv(1, 1, 2, slow()), mig->scratch("killed"));
  // Killed once memory is on its way, i.e. the destination's QEMU runs and takes the stream.
  ASSERT_TRUE(test::wait_until(
      [&] {
        const std::string err = moving.err();
        const size_t last = err.rfind(" MiB sent");
        return last != std::string::npos && err.compare(err.rfind(", ", last), 5, ", 0.0") != 0;
      },
      90s))
      << moving.err();
  ASSERT_EQ(::kill(std::stoi(pid), SIGKILL), 0);
  EXPECT_EQ(moving.wait_exit(90s), 1);
  EXPECT_NE(moving.err().find("the VM runs on this host"), std::string::npos) << moving.err();
  // The destination's daemon comes back (as after a crash) and clears the half-migrated domain it finds.
  auto restart = mig->testbed({"up", "0", "--hosts", "2", "--prefix", mig->prefix()});
  ASSERT_EQ(restart.rc, 0) << restart.err;
  EXPECT_TRUE(test::wait_until([&] { return mig->qemu_processes(mig->vm()) == 1; }, 30s))
      << mig->qemu_processes(mig->vm()) << " QEMU processes of " << mig->vm();
  EXPECT_EQ(mig->only_host(mig->vm()), 1) << where();
  // And the VM moves there fine afterwards, and back.
  ASSERT_EQ(mig->migrate(1, 1, 2).rc, 0);
  ASSERT_EQ(mig->migrate(1, 2, 1).rc, 0);
}

}  // namespace
}  // namespace morph
