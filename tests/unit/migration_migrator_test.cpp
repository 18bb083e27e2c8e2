// Migrator against a fake of MigrationDriver: option ranges, the checks before anything moves (VM here
// and running, no job on it, destination answers and is another host without the VM, at most two
// outbound migrations), timeout and cancel aborting with the VM left on the source, the switch to
// post-copy, and the "exactly one host" checks afterwards. Time is a fake clock that the Migrator's
// sleeps advance, so no test waits.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

#include "hostagent/migration/migrator.h"

namespace morph::agent::migration {
namespace {

constexpr const char* kSrc = "";  // the source, as the driver names it
constexpr const char* kDst = "qemu+unix:///system?socket=/dst/libvirt-sock";

using ::testing::_;
using ::testing::HasSubstr;
using ::testing::Invoke;
using ::testing::Return;
constexpr const char* kUuid = "11111111-2222-3333-4444-555555555555";

// Two hosts and a VM on the first; a migration that finishes after `polls_to_finish` polls unless aborted.
struct TwoHosts {
  std::map<std::string, std::string> host_uuids{{kSrc, "host-a"}, {kDst, "host-b"}};
  std::map<std::string, Presence> where{{kSrc, Presence::running}, {kDst, Presence::absent}};
  SourceVm vm{kUuid, "vm1", Presence::running, true, false, ""};
  unsigned others_outbound = 0;
  int polls_to_finish = 3;
  int polls = 0;
  bool aborted = false;
  Status outcome;  // of the migration call when it is not aborted
  JobStats completed_stats{false, 812, 104857600, 0, 268435456, 3, 31};
  bool dst_down_after = false;  // the destination's daemon died during the migration

  Result<SourceVm> find(const std::string& v) {
    if (v != vm.uuid && v != vm.name) return Error(Errc::not_found, "no domain '" + v + "'");
    return vm;
  }
  Result<std::string> host_uuid(const std::string& uri) {
    auto it = host_uuids.find(uri);
    if (it == host_uuids.end()) return Error(Errc::unavailable, "cannot connect to " + uri);
    return it->second;
  }
  Result<Presence> presence(const std::string& uri, const std::string&) {
    if (uri == kDst && dst_down_after && polls > 0) return Error(Errc::unavailable, "connection refused");
    auto it = where.find(uri);
    if (it == where.end()) return Error(Errc::unavailable, "cannot connect to " + uri);
    return it->second;
  }
  MigrationEnd poll(const std::string&) {
    ++polls;
    if (aborted)
      return {true, Error(Errc::conflict, "migration: operation aborted: migration out job: canceled by client")};
    if (polls < polls_to_finish) return {};
    if (outcome.ok()) {
      where[kSrc] = Presence::absent;
      where[kDst] = Presence::running;
    }
    return {true, outcome};
  }
  Result<JobStats> job(const std::string&) {
    JobStats s;
    s.active = true;
    s.elapsed_ms = 100 * static_cast<uint64_t>(polls);
    s.data_processed = 1000 * static_cast<uint64_t>(polls);
    s.memory_iteration = static_cast<uint64_t>(polls);
    return s;
  }
};

class MockDriver : public MigrationDriver {
 public:
  MOCK_METHOD(Result<SourceVm>, find, (const std::string&), (override));
  MOCK_METHOD(Result<std::string>, host_uuid, (const std::string&), (override));
  MOCK_METHOD(Result<Presence>, presence, (const std::string&, const std::string&), (override));
  MOCK_METHOD(Result<unsigned>, outbound_migrations, (), (override));
  MOCK_METHOD(Status, begin, (const SourceVm&, const std::string&, const MigrationOptions&), (override));
  MOCK_METHOD(MigrationEnd, poll, (const std::string&), (override));
  MOCK_METHOD(Result<JobStats>, job, (const std::string&), (override));
  MOCK_METHOD(Status, abort, (const std::string&), (override));
  MOCK_METHOD(Status, start_postcopy, (const std::string&), (override));
  MOCK_METHOD(Status, resume, (const std::string&), (override));
  MOCK_METHOD(Result<JobStats>, completed, (const std::string&, const std::string&), (override));
  MOCK_METHOD(void, end, (const std::string&), (override));

  void delegate_to(TwoHosts& h) {
    ON_CALL(*this, find).WillByDefault(Invoke(&h, &TwoHosts::find));
    ON_CALL(*this, host_uuid).WillByDefault(Invoke(&h, &TwoHosts::host_uuid));
    ON_CALL(*this, presence).WillByDefault(Invoke(&h, &TwoHosts::presence));
    ON_CALL(*this, outbound_migrations).WillByDefault(Invoke([&h]() -> Result<unsigned> { return h.others_outbound; }));
    ON_CALL(*this, begin).WillByDefault(Return(Status{}));
    ON_CALL(*this, poll).WillByDefault(Invoke(&h, &TwoHosts::poll));
    ON_CALL(*this, job).WillByDefault(Invoke(&h, &TwoHosts::job));
    ON_CALL(*this, abort).WillByDefault(Invoke([&h](const std::string&) -> Status {
      h.aborted = true;
      return {};
    }));
    ON_CALL(*this, start_postcopy).WillByDefault(Return(Status{}));
    ON_CALL(*this, resume).WillByDefault(Invoke([&h](const std::string&) -> Status {
      h.where[kSrc] = Presence::running;
      return {};
    }));
    ON_CALL(*this, completed).WillByDefault(Invoke([&h](const std::string&, const std::string&) -> Result<JobStats> {
      return h.completed_stats;
    }));
  }
};

class MigratorTest : public ::testing::Test {
 protected:
  MigratorTest() {
    driver.delegate_to(host);
    migrator = std::make_unique<Migrator>(
        driver, Migrator::Limits{2, std::chrono::milliseconds(100)}, [this] { return now; },
        [this](std::chrono::milliseconds d) { now += d; });
  }
  MigrationRequest request(MigrationOptions o = {}) { return {"vm1", kDst, std::move(o)}; }
  // `req` fails with `code` and an error saying `says`.
  void expect_error(const MigrationRequest& req, Errc code, const std::string& says) {
    auto r = migrator->migrate(req);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), code);
    EXPECT_THAT(r.error().what(), HasSubstr(says));
  }
  // The same, refused before anything moves.
  void expect_refused(const MigrationRequest& req, Errc code, const std::string& says) {
    EXPECT_CALL(driver, begin).Times(0);
    expect_error(req, code, says);
  }

  std::chrono::steady_clock::time_point now{};
  TwoHosts host;
  ::testing::NiceMock<MockDriver> driver;
  std::unique_ptr<Migrator> migrator;
};

// The VM's state on the host of `uri` becomes `p` at every poll (`at_end`: once the migration call ended).
void set_at_poll(MockDriver& driver, TwoHosts& host, const char* uri, Presence p, bool at_end) {
  ON_CALL(driver, poll).WillByDefault(Invoke([&host, uri, p, at_end](const std::string& u) {
    if (!at_end) host.where[uri] = p;
    auto e = host.poll(u);
    if (at_end && e.finished) host.where[uri] = p;
    return e;
  }));
}

TEST_F(MigratorTest, MovesTheVmAndReportsTheDestinationsFigures) {
  std::vector<uint64_t> progress;
  EXPECT_CALL(driver, begin(_, kDst, _)).Times(1);
  EXPECT_CALL(driver, end(kUuid)).Times(1);
  auto rep = migrator->migrate(request(), [&](const JobStats& s) { progress.push_back(s.data_processed); });
  ASSERT_TRUE(rep.ok()) << rep.error().what();
  EXPECT_EQ(rep->vm_uuid, kUuid);
  EXPECT_EQ(rep->vm_name, "vm1");
  EXPECT_EQ(rep->downtime_ms, 31u);
  EXPECT_EQ(rep->total_ms, 812u);
  EXPECT_EQ(rep->bytes, 104857600u);
  EXPECT_EQ(rep->iterations, 3u);
  EXPECT_FALSE(rep->postcopy);
  EXPECT_TRUE(rep->warning.empty());
  EXPECT_EQ(progress, (std::vector<uint64_t>{1000, 2000}));  // one report per poll while it ran
}

TEST_F(MigratorTest, OptionsOutOfRangeAreRefusedBeforeTheDriverIsAsked) {
  EXPECT_CALL(driver, find).Times(0);
  EXPECT_CALL(driver, begin).Times(0);
  const std::vector<std::pair<std::function<void(MigrationOptions&)>, const char*>> cases = {
      {[](MigrationOptions& o) { o.max_downtime = std::chrono::milliseconds(0); }, "max downtime 0 ms"},
      {[](MigrationOptions& o) { o.max_downtime = std::chrono::milliseconds(60001); }, "max downtime 60001 ms"},
      {[](MigrationOptions& o) { o.bandwidth_mib_s = (1u << 20) + 1; }, "bandwidth"},
      {[](MigrationOptions& o) { o.timeout = std::chrono::milliseconds(999); }, "timeout 999 ms"},
      {[](MigrationOptions& o) { o.postcopy = o.tunnelled = true; }, "post-copy"},
      {[](MigrationOptions& o) { o.transport_uri = "http://x"; }, "transport URI 'http://x'"},
      {[](MigrationOptions& o) {
         o.transport_uri = "unix:///run/m.sock";
         o.tunnelled = true;
       },
       "exclude each other"},
  };
  for (const auto& [spoil, says] : cases) {
    MigrationOptions o;
    spoil(o);
    auto r = migrator->migrate(request(o));
    ASSERT_FALSE(r.ok()) << says;
    EXPECT_EQ(r.error().code(), Errc::invalid_argument);
    EXPECT_THAT(r.error().what(), HasSubstr(says));
  }
  auto no_dest = migrator->migrate({"vm1", "", {}});
  ASSERT_FALSE(no_dest.ok());
  EXPECT_EQ(no_dest.error().code(), Errc::invalid_argument);
}

TEST_F(MigratorTest, TheTransportUrisThatPass) {
  for (const char* t : {"tcp://10.0.0.2", "tcp://h2:49152", "unix:///var/lib/m/vm.sock", "rdma://10.0.0.2"}) {
    MigrationOptions o;
    o.transport_uri = t;
    EXPECT_TRUE(Migrator::validate(o).ok()) << t;
  }
}

TEST_F(MigratorTest, AVmNotOnThisHostIsNotFound) {
  expect_refused({"vm9", kDst, {}}, Errc::not_found, "VM vm9 is not on this host");
}

TEST_F(MigratorTest, AVmThatDoesNotRunIsAConflict) {
  host.vm.presence = Presence::defined;
  expect_refused(request(), Errc::conflict, "a live migration moves a running VM");
}

TEST_F(MigratorTest, AVmAlreadyMigratingOrBusyIsAConflict) {
  host.vm.migration_job = true;  // started by another client (virsh, another agent process)
  expect_refused(request(), Errc::conflict, "a migration of VM vm1 runs already");
  host.vm.migration_job = false;
  host.vm.other_job = "snapshot";
  expect_refused(request(), Errc::conflict, "busy with a libvirt snapshot job");
}

TEST_F(MigratorTest, TheVmsOwnHostIsRefused) {
  host.host_uuids[kDst] = "host-a";
  expect_refused(request(), Errc::invalid_argument, "is this host (host UUID host-a)");
}

TEST_F(MigratorTest, AnUnknownDestinationIsUnavailable) {
  expect_refused({"vm1", "qemu+tcp://nowhere/system", {}}, Errc::unavailable,
                 "destination qemu+tcp://nowhere/system does not answer");
}

TEST_F(MigratorTest, ADestinationThatHasTheVmAlreadyIsAConflict) {
  host.where[kDst] = Presence::defined;
  expect_refused(request(), Errc::conflict, "already has a domain with VM vm1's UUID");
}

TEST_F(MigratorTest, AtMostTwoOutboundMigrationsCountingOtherClients) {
  host.others_outbound = 2;
  expect_refused(request(), Errc::unavailable, "already runs 2 outbound migration(s), at most 2 at once");
  host.others_outbound = 1;
  EXPECT_CALL(driver, begin).Times(1);
  EXPECT_TRUE(migrator->migrate(request()).ok());
}

// Two migrations through one Migrator: the second VM waits for a slot that the first holds.
TEST(MigratorLimits, ItsOwnMigrationsTakeSlotsBeforeLibvirtSeesThem) {
  TwoHosts host;
  ::testing::NiceMock<MockDriver> driver;
  driver.delegate_to(host);
  std::mutex mu;
  std::condition_variable cv;
  bool begun = false, release = false;
  ON_CALL(driver, begin)
      .WillByDefault(Invoke([&](const SourceVm&, const std::string&, const MigrationOptions&) -> Status {
        std::lock_guard lk(mu);
        begun = true;
        cv.notify_all();
        return {};
      }));
  ON_CALL(driver, poll).WillByDefault(Invoke([&](const std::string&) -> MigrationEnd {
    std::unique_lock lk(mu);
    if (!release) return {};
    return {true, Status{}};
  }));
  ON_CALL(driver, presence).WillByDefault(Invoke([&](const std::string& uri, const std::string&) -> Result<Presence> {
    std::lock_guard lk(mu);
    if (!release) return uri == kDst ? Presence::absent : Presence::running;
    return uri == kDst ? Presence::running : Presence::absent;
  }));
  Migrator m(driver, Migrator::Limits{1, std::chrono::milliseconds(1)});
  std::thread first([&] { EXPECT_TRUE(m.migrate({"vm1", kDst, {}}).ok()); });
  {
    std::unique_lock lk(mu);
    cv.wait(lk, [&] { return begun; });
  }
  auto same = m.migrate({"vm1", kDst, {}});
  ASSERT_FALSE(same.ok());
  EXPECT_EQ(same.error().code(), Errc::conflict);  // the same VM: already migrating
  EXPECT_THAT(same.error().what(), HasSubstr("runs already"));
  host.vm = {"99999999-2222-3333-4444-555555555555", "vm2", Presence::running, true, false, ""};
  auto other = m.migrate({"vm2", kDst, {}});
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.error().code(), Errc::unavailable);  // another VM: no slot left
  {
    std::lock_guard lk(mu);
    release = true;
  }
  first.join();
}

TEST_F(MigratorTest, ATimeoutAbortsAndTheVmStaysOnTheSource) {
  host.polls_to_finish = 1 << 30;  // never converges
  MigrationOptions o;
  o.timeout = std::chrono::milliseconds(2000);
  EXPECT_CALL(driver, abort(kUuid)).Times(1);
  auto r = migrator->migrate(request(o));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Errc::unavailable);
  EXPECT_THAT(r.error().what(), ::testing::AllOf(HasSubstr("timed out after 2000 ms and aborted"),
                                                 HasSubstr("the VM runs on this host")));
  EXPECT_THAT(r.error().what(), ::testing::Not(HasSubstr("destination still has it")));
  EXPECT_LE(now - std::chrono::steady_clock::time_point{}, std::chrono::milliseconds(2200));
}

TEST_F(MigratorTest, CancelAbortsAndSaysSo) {
  host.polls_to_finish = 1 << 30;
  EXPECT_CALL(driver, abort(kUuid)).Times(1);
  auto r = migrator->migrate(request(), [&](const JobStats& s) {
    if (s.memory_iteration == 2) {
      EXPECT_TRUE(migrator->cancel("vm1").ok());
    }
  });
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Errc::conflict);
  EXPECT_THAT(r.error().what(), ::testing::AllOf(HasSubstr("cancelled"), HasSubstr("the VM runs on this host")));
  auto none = migrator->cancel("vm1");
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().code(), Errc::not_found);
}

TEST_F(MigratorTest, PostcopySwitchesOnceAfterTheFirstPassAndTheTimeoutNoLongerAborts) {
  host.polls_to_finish = 40;  // 4 s of polls, beyond the 1 s timeout
  MigrationOptions o;
  o.postcopy = true;
  o.timeout = std::chrono::milliseconds(1000);
  EXPECT_CALL(driver, start_postcopy(kUuid)).Times(1);
  EXPECT_CALL(driver, abort).Times(0);
  auto r = migrator->migrate(request(o));
  ASSERT_TRUE(r.ok()) << r.error().what();
  EXPECT_TRUE(r->postcopy);
}

TEST_F(MigratorTest, AFailureThatLeavesTheVmPausedResumesItOnTheSource) {
  host.outcome = Error(Errc::unavailable, "migration: internal error: qemu unexpectedly closed the monitor");
  set_at_poll(driver, host, kSrc, Presence::paused, false);  // the switch-over had paused it
  EXPECT_CALL(driver, resume(kUuid)).Times(1);
  auto r = migrator->migrate(request());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Errc::unavailable);
  EXPECT_THAT(r.error().what(), ::testing::AllOf(HasSubstr("qemu unexpectedly closed the monitor"),
                                                 HasSubstr("the VM runs on this host")));
}

TEST_F(MigratorTest, AFailureSaysWhatTheDestinationStillHas) {
  host.outcome = Error(Errc::unavailable, "migration: end of file while reading data");
  set_at_poll(driver, host, kDst, Presence::paused, false);  // an incoming QEMU nobody cleaned up
  auto r = migrator->migrate(request());
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error().what(), HasSubstr("the destination still has it (paused)"));
}

TEST_F(MigratorTest, ADestinationThatDiedLeavesWhatItHoldsUnknownAndTheVmOnTheSource) {
  host.outcome = Error(Errc::unavailable, "migration: Unable to read from monitor: Connection reset by peer");
  host.dst_down_after = true;
  auto r = migrator->migrate(request());
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error().what(),
              ::testing::AllOf(HasSubstr("Connection reset by peer"), HasSubstr("the VM runs on this host"),
                               HasSubstr("the destination does not answer")));
}

TEST_F(MigratorTest, SuccessWithoutTheVmRunningOnTheDestinationIsAnError) {
  set_at_poll(driver, host, kDst, Presence::paused, true);
  expect_error(request(), Errc::internal, "not running on");
}

TEST_F(MigratorTest, SuccessWithTheVmStillRunningOnTheSourceIsAnError) {
  set_at_poll(driver, host, kSrc, Presence::running, true);
  expect_error(request(), Errc::internal, "running on both hosts");
}

TEST_F(MigratorTest, UnreadableDestinationStatisticsFallBackToTheSourcesFigures) {
  ON_CALL(driver, completed).WillByDefault(Return(Result<JobStats>(Error(Errc::unavailable, "no job"))));
  auto r = migrator->migrate(request());
  ASSERT_TRUE(r.ok()) << r.error().what();
  EXPECT_EQ(r->bytes, 2000u);    // the last progress report
  EXPECT_EQ(r->total_ms, 200u);  // two polls of 100 ms on the fake clock before the third saw it end
  EXPECT_THAT(r->warning, HasSubstr("downtime unknown"));
}

}  // namespace
}  // namespace morph::agent::migration
