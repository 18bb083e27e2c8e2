// Storage tier moves without a hypervisor: the pool layout and the disk's XML as pure functions, the block
// copy's state handling (ready, pivot, timeout, a copy that dies, a pivot that is refused) against a
// scripted fake of BlockCopyOps, and the engine's validation, rollback and lease revert of storage_tier
// through a gmock Mechanisms.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <deque>
#include <filesystem>
#include <set>

#include "hostagent/shifter/mechanisms.h"
#include "hostagent/shifter/shift_engine.h"
#include "hostagent/shifter/storage_tier.h"

namespace morph::agent::shifter {
namespace {

// The category a call failed with; nullopt when it did not fail.
template <class T>
std::optional<Errc> failure(const Result<T>& r) {
  if (r.ok()) return std::nullopt;
  return r.error().code();
}

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using ::testing::_;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Return;

const std::string kStd = "/var/lib/morph-testbed/P/standard";
const std::string kFast = "/var/lib/morph-testbed/P/fast";

// ------------------------------------------------------------------------------------------ layout

TEST(StoragePlacement, TestBedSiblingLayoutGivesTierAndBothPools) {
  auto s = place_disk(kStd + "/P-vm1.raw", {});
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->tier, kTierStandard);
  EXPECT_EQ(s->standard_dir, kStd);
  EXPECT_EQ(s->fast_dir, kFast);
  auto f = place_disk(kFast + "/P-vm1-vda.raw", {});
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->tier, kTierFast);
  EXPECT_EQ(f->standard_dir, kStd);
  EXPECT_FALSE(place_disk("/var/lib/libvirt/images/vm.qcow2", {}).has_value());
  EXPECT_FALSE(place_disk("", {}).has_value());
}

TEST(StoragePlacement, ConfiguredPoolsMatchThroughSymlinks) {
  const fs::path root = fs::temp_directory_path() / ("morph-tier-" + std::to_string(getpid()));
  fs::create_directories(root / "disks");
  fs::create_directories(root / "ram");
  fs::create_symlink(root / "ram", root / "fast-link");
  const StoragePools pools{(root / "disks").string() + "/", (root / "fast-link").string()};
  auto viaLink = place_disk((root / "fast-link" / "a.raw").string(), pools);
  auto viaTarget = place_disk((root / "ram" / "a.raw").string(), pools);
  auto standard = place_disk((root / "disks" / "a.raw").string(), pools);
  auto elsewhere = place_disk((root / "a.raw").string(), pools);
  fs::remove_all(root);
  ASSERT_TRUE(viaLink && viaTarget && standard);
  EXPECT_EQ(viaLink->tier, kTierFast);
  EXPECT_EQ(viaTarget->tier, kTierFast);
  EXPECT_EQ(standard->tier, kTierStandard);
  EXPECT_FALSE(elsewhere.has_value());
}

TEST(StoragePlacement, CopyPathNamesVmTargetAndFormat) {
  EXPECT_EQ(copy_path(kFast, "P-vm1", "vda", "raw"), kFast + "/P-vm1-vda.raw");
  EXPECT_EQ(copy_path(kStd + "/", "P-vm1", "vdb", "qcow2"), kStd + "/P-vm1-vdb.qcow2");
}

// Live XML of a test-bed VM during a copy (virsh dumpxml, libvirt 9.0, trimmed to what matters).
constexpr const char* kMirroringXml = R"(<domain type='qemu' id='7'>
  <name>P-vm1</name>
  <uuid>28820999-9ceb-427b-89b3-5f45302410b0</uuid>
  <memory unit='KiB'>262144</memory>
  <currentMemory unit='KiB'>196608</currentMemory>
  <vcpu placement='static'>1</vcpu>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw' cache='none' io='native'/>
      <source file='/var/lib/morph-testbed/P/standard/P-vm1.raw' index='3'/>
      <backingStore/>
      <mirror type='file' file='/var/lib/morph-testbed/P/fast/P-vm1-vda.raw' format='raw' job='copy'>
        <format type='raw'/>
        <source file='/var/lib/morph-testbed/P/fast/P-vm1-vda.raw' index='4'/>
        <backingStore/>
      </mirror>
      <target dev='vda' bus='virtio'/>
      <alias name='virtio-disk0'/>
    </disk>
  </devices>
</domain>)";

TEST(StorageDiskXml, MirrorIsNotTheDisksSource) {
  auto d = find_disk(kMirroringXml, "vda");
  ASSERT_TRUE(d.ok()) << d.error().describe();
  EXPECT_EQ(d->source, kStd + "/P-vm1.raw");
  EXPECT_EQ(d->format, "raw");
  EXPECT_EQ(d->cache, "none");
  auto missing = find_disk(kMirroringXml, "vdb");
  ASSERT_EQ(failure(missing), Errc::not_found);
}

// ------------------------------------------------------------------------------------------ block job

// A domain with one disk and a file system, whose block copy follows a script. Every call is logged.
class ScriptedCopy : public BlockCopyOps {
 public:
  ScriptedCopy() { files.insert(source); }

  Result<VmDisk> disk(const std::string& target) override {
    log.push_back("disk");
    return VmDisk{target, source, "raw", cache};
  }
  Status start_copy(const std::string&, const std::string& dest, const std::string& format) override {
    log.push_back("start " + dest + " " + format);
    if (start_error) return *start_error;
    files.insert(dest);
    copying = dest;
    polls = 0;
    return {};
  }
  Result<std::optional<BlockJobProgress>> job(const std::string&) override {
    log.push_back("job");
    if (copying.empty()) return std::optional<BlockJobProgress>{};
    ++polls;
    if (vanish_after && polls > *vanish_after) {
      copying.clear();  // QEMU ended the job on an error (e.g. ENOSPC in the pool)
      return std::optional<BlockJobProgress>{};
    }
    const uint64_t end = 256u << 20;
    const bool ready = ready_after && polls >= *ready_after;
    return std::optional<BlockJobProgress>{BlockJobProgress{ready ? end : end / 2, end}};
  }
  Status pivot(const std::string&) override {
    log.push_back("pivot");
    if (!refusals.empty()) {
      Error e = refusals.front();
      refusals.pop_front();
      return e;
    }
    if (!pivot_lands_elsewhere) source = copying;
    copying.clear();
    return {};
  }
  Status abort(const std::string&) override {
    log.push_back("abort");
    if (copying.empty()) return Error(Errc::not_found, "no block job");
    copying.clear();
    return {};
  }
  bool exists(const std::string& path) override { return files.count(path) != 0; }
  Status remove(const std::string& path) override {
    log.push_back("remove " + path);
    if (path == undeletable) return Error(Errc::system, "removing " + path, EBUSY);
    files.erase(path);
    return {};
  }
  Status probe_direct_io(const std::string& dir) override {
    log.push_back("probe " + dir);
    if (no_direct_io) return Error(Errc::unavailable, "the file system of " + dir + " refuses O_DIRECT");
    return {};
  }

  std::string source = kStd + "/P-vm1.raw";
  std::string cache = "none";
  std::string copying;
  std::set<std::string> files;
  std::vector<std::string> log;
  int polls = 0;
  std::optional<int> ready_after = 3;  // nullopt: never ready
  std::optional<int> vanish_after;
  std::deque<Error> refusals;
  std::optional<Error> start_error;
  std::string undeletable;
  bool no_direct_io = false;
  bool pivot_lands_elsewhere = false;
};

const std::string kDest = kFast + "/P-vm1-vda.raw";
const StorageMoveOptions kQuick{.timeout = 200ms, .poll = 1ms};

// vda of P-vm1 moved to `tier` on `host`, polling quickly.
Result<StorageMove> move(ScriptedCopy& host, int64_t tier) {
  return move_disk_to_tier(host, "P-vm1", "vda", tier, {}, kQuick);
}

bool contains(const std::vector<std::string>& log, const std::string& entry) {
  return std::find(log.begin(), log.end(), entry) != log.end();
}
// Index of the first entry equal to `entry` (log.size() when absent).
size_t position(const std::vector<std::string>& log, const std::string& entry) {
  return static_cast<size_t>(std::find(log.begin(), log.end(), entry) - log.begin());
}

TEST(StorageMove, CopiesUntilReadyPivotsThenRemovesTheOldFile) {
  ScriptedCopy host;
  auto mv = move(host, kTierFast);
  ASSERT_TRUE(mv.ok()) << mv.error().describe();
  EXPECT_TRUE(mv->moved());
  EXPECT_EQ(mv->from, kStd + "/P-vm1.raw");
  EXPECT_EQ(mv->to, kDest);
  EXPECT_TRUE(mv->warning.empty());
  EXPECT_EQ(host.source, kDest);
  EXPECT_EQ(host.polls, 3) << "polls until cur == end";
  EXPECT_TRUE(contains(host.log, "probe " + kFast)) << "cache='none' copies need O_DIRECT in the pool";
  EXPECT_FALSE(contains(host.log, "abort"));
  // The old file goes only after the pivot.
  EXPECT_LT(position(host.log, "pivot"), position(host.log, "remove " + kStd + "/P-vm1.raw"));
  EXPECT_EQ(host.files, std::set<std::string>{kDest});
}

TEST(StorageMove, MovingBackUsesTheStandardPool) {
  ScriptedCopy host;
  host.source = kDest;
  host.files = {kDest};
  host.cache = "writeback";
  auto mv = move(host, kTierStandard);
  ASSERT_TRUE(mv.ok()) << mv.error().describe();
  EXPECT_EQ(mv->to, kStd + "/P-vm1-vda.raw");
  EXPECT_EQ(host.files, std::set<std::string>{kStd + "/P-vm1-vda.raw"}) << "the fast copy is freed";
  EXPECT_FALSE(contains(host.log, "probe " + kStd)) << "writeback needs no O_DIRECT";
}

TEST(StorageMove, AlreadyInTheTierIsANoOp) {
  ScriptedCopy host;
  auto mv = move(host, kTierStandard);
  ASSERT_TRUE(mv.ok());
  EXPECT_FALSE(mv->moved());
  EXPECT_THAT(host.log, ElementsAre("disk"));
}

TEST(StorageMove, NeverReadyTimesOutAndCancelsWithoutPivot) {
  ScriptedCopy host;
  host.ready_after.reset();
  const auto t0 = std::chrono::steady_clock::now();
  auto mv = move_disk_to_tier(host, "P-vm1", "vda", kTierFast, {}, {.timeout = 30ms, .poll = 1ms});
  const auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_EQ(failure(mv), Errc::unavailable);
  EXPECT_THAT(mv.error().message(), HasSubstr("not ready after 30 ms"));
  EXPECT_THAT(mv.error().message(), HasSubstr("of 268435456 bytes"));
  EXPECT_GE(took, 30ms);
  EXPECT_LT(took, 2s);
  EXPECT_FALSE(contains(host.log, "pivot"));
  EXPECT_LT(position(host.log, "abort"), position(host.log, "remove " + kDest)) << "cancel, then drop the copy";
  EXPECT_EQ(host.source, kStd + "/P-vm1.raw") << "the guest keeps its disk";
  EXPECT_EQ(host.files, std::set<std::string>{kStd + "/P-vm1.raw"});
}

TEST(StorageMove, ACopyThatDiesIsAnIoErrorAndKeepsTheOriginal) {
  ScriptedCopy host;
  host.ready_after.reset();
  host.vanish_after = 2;
  auto mv = move(host, kTierFast);
  ASSERT_EQ(failure(mv), Errc::io);
  EXPECT_THAT(mv.error().message(), HasSubstr("ended before it was ready"));
  EXPECT_FALSE(contains(host.log, "pivot"));
  EXPECT_EQ(host.source, kStd + "/P-vm1.raw");
  EXPECT_EQ(host.files, std::set<std::string>{kStd + "/P-vm1.raw"}) << "the partial copy is removed";
}

TEST(StorageMove, PivotRefusedAsNotReadyIsRetried) {
  ScriptedCopy host;
  host.refusals = {Error(Errc::conflict, "block copy still active: disk 'vda' not ready for pivot yet"),
                   Error(Errc::conflict, "block copy still active: disk 'vda' not ready for pivot yet")};
  auto mv = move(host, kTierFast);
  ASSERT_TRUE(mv.ok()) << mv.error().describe();
  EXPECT_EQ(std::count(host.log.begin(), host.log.end(), "pivot"), 3);
  EXPECT_EQ(host.source, kDest);
}

TEST(StorageMove, PivotFailureCancelsAndKeepsTheOriginal) {
  ScriptedCopy host;
  host.refusals = {Error(Errc::system, "internal error: unable to execute QEMU command 'job-complete'")};
  auto mv = move(host, kTierFast);
  ASSERT_FALSE(mv.ok());
  EXPECT_THAT(mv.error().message(), HasSubstr("job-complete"));
  EXPECT_THAT(mv.error().message(), HasSubstr("moving disk vda of P-vm1 to " + kDest));
  EXPECT_TRUE(contains(host.log, "abort"));
  EXPECT_EQ(host.source, kStd + "/P-vm1.raw");
  EXPECT_EQ(host.files, std::set<std::string>{kStd + "/P-vm1.raw"});
}

TEST(StorageMove, LeftoverCopyIsRemovedBeforeStarting) {
  ScriptedCopy host;
  host.files.insert(kDest);  // an interrupted earlier move
  auto mv = move(host, kTierFast);
  ASSERT_TRUE(mv.ok()) << mv.error().describe();
  EXPECT_LT(position(host.log, "remove " + kDest), position(host.log, "start " + kDest + " raw"));
}

TEST(StorageMove, PoolWithoutDirectIoIsUnavailableBeforeAnyCopy) {
  ScriptedCopy host;
  host.no_direct_io = true;
  auto mv = move(host, kTierFast);
  ASSERT_EQ(failure(mv), Errc::unavailable);
  EXPECT_THAT(mv.error().message(), HasSubstr("O_DIRECT"));
  EXPECT_THAT(host.log, ElementsAre("disk", "probe " + kFast));
}

TEST(StorageMove, StartFailureChangesNothing) {
  ScriptedCopy host;
  host.start_error =
      Error(Errc::system, "virDomainBlockCopy: Requested operation is not valid: domain is not transient");
  auto mv = move(host, kTierFast);
  ASSERT_FALSE(mv.ok());
  EXPECT_THAT(mv.error().message(), HasSubstr("starting the copy"));
  EXPECT_FALSE(contains(host.log, "pivot"));
  EXPECT_EQ(host.files, std::set<std::string>{kStd + "/P-vm1.raw"});
}

TEST(StorageMove, RejectsUnknownTierAndDisksOutsideThePools) {
  ScriptedCopy host;
  auto bad_tier = move_disk_to_tier(host, "P-vm1", "vda", 2, {}, kQuick);
  ASSERT_EQ(failure(bad_tier), Errc::invalid_argument);
  host.source = "/var/lib/libvirt/images/P-vm1.raw";
  auto outside = move(host, kTierFast);
  ASSERT_FALSE(outside.ok());
  EXPECT_THAT(outside.error().message(), HasSubstr("neither storage pool"));
  EXPECT_FALSE(contains(host.log, "start " + kDest + " raw"));
}

TEST(StorageMove, OldFileThatCannotBeRemovedIsAWarning) {
  ScriptedCopy host;
  host.undeletable = kStd + "/P-vm1.raw";
  auto mv = move(host, kTierFast);
  ASSERT_TRUE(mv.ok());
  EXPECT_THAT(mv->warning, HasSubstr("old copy was not removed"));
  EXPECT_EQ(host.source, kDest);
}

TEST(StorageMove, PivotOntoAnUnexpectedFileKeepsTheOldOne) {
  ScriptedCopy host;
  host.pivot_lands_elsewhere = true;
  auto mv = move(host, kTierFast);
  ASSERT_EQ(failure(mv), Errc::internal);
  EXPECT_FALSE(contains(host.log, "remove " + kStd + "/P-vm1.raw"));
}

// ------------------------------------------------------------------------------------------ engine

class MockMechanisms : public Mechanisms {
 public:
  MOCK_METHOD(Result<VmTarget>, resolve, (const std::string&), (override));
  MOCK_METHOD(Result<InForce>, read, (const VmTarget&), (override));
  MOCK_METHOD(Result<std::string>, apply, (const VmTarget&, const Adjustment&), (override));
};

MATCHER_P2(Sets, resource, value, "") {
  return arg.resource == resource && arg.value == value;
}

class StorageTierEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    vm = VmTarget{"uuid-1", "vm1", 1, 256, 2, "vda", {}, false, kTierStandard};
    ON_CALL(mech, resolve(_)).WillByDefault([this](const std::string&) -> Result<VmTarget> { return vm; });
    ON_CALL(mech, read(_)).WillByDefault([this](const VmTarget&) -> Result<InForce> { return host; });
    ON_CALL(mech, apply(_, _)).WillByDefault([this](const VmTarget&, const Adjustment& a) -> Result<std::string> {
      if (a.resource == Resource::storage_tier) host.storage_tier = a.value;
      if (a.resource == Resource::cpu) return Error(Errc::system, "cgroup write failed");
      return std::string{};
    });
  }
  ShiftOutcome shift(std::vector<Adjustment> adj) { return engine.shift({++id, "vm1", std::move(adj), 5s}); }

  VmTarget vm;
  InForce host;
  ::testing::NiceMock<MockMechanisms> mech;
  TimePoint now = TimePoint(std::chrono::seconds(1'700'000'000));
  ShiftEngine engine{mech, [this] { return now; }, {}};
  uint64_t id = 0;
};

TEST_F(StorageTierEngineTest, InvalidRequestsNeverReachTheHost) {
  EXPECT_CALL(mech, apply(_, _)).Times(0);
  struct Case {
    int64_t value;
    std::string disk;
    int64_t disk_tier;
    const char* why;
  };
  for (const Case& c :
       {Case{2, "vda", kTierStandard, "not a storage tier"}, Case{1, "", kTierNone, "the VM has no disk"},
        Case{1, "vda", kTierNone, "disk vda is in neither storage pool"}}) {
    vm.disk = c.disk;
    vm.disk_tier = c.disk_tier;
    ShiftOutcome out = shift({{Resource::storage_tier, c.value, {}}});
    ASSERT_FALSE(out.ok()) << c.why;
    EXPECT_EQ(out.error->code(), Errc::invalid_argument);
    EXPECT_THAT(out.error->message(), HasSubstr(c.why));
  }
}

TEST_F(StorageTierEngineTest, LeaseExpiryMovesTheDiskBack) {
  ShiftOutcome out = shift({{Resource::storage_tier, kTierFast, {}}});
  ASSERT_TRUE(out.ok()) << out.error->what();
  EXPECT_EQ(out.in_force.storage_tier, kTierFast);
  ASSERT_TRUE(engine.baseline("uuid-1").has_value());
  EXPECT_EQ(engine.baseline("uuid-1")->storage_tier, kTierStandard);
  EXPECT_CALL(mech, apply(_, Sets(Resource::storage_tier, kTierStandard))).Times(1);
  now += 6s;
  auto events = engine.expire_due();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_FALSE(events[0].error.has_value());
  EXPECT_EQ(host.storage_tier, kTierStandard);
}

TEST_F(StorageTierEngineTest, LaterFailureMovesTheDiskBack) {
  EXPECT_CALL(mech, apply(_, Sets(Resource::storage_tier, kTierFast))).Times(1);
  EXPECT_CALL(mech, apply(_, Sets(Resource::cpu, 500))).Times(1);
  EXPECT_CALL(mech, apply(_, Sets(Resource::storage_tier, kTierStandard))).Times(1);
  ShiftOutcome out = shift({{Resource::storage_tier, kTierFast, {}}, {Resource::cpu, 500, {}}});
  ASSERT_FALSE(out.ok());
  EXPECT_THAT(out.error->message(), HasSubstr("storage_tier rolled back"));
  EXPECT_EQ(out.in_force.storage_tier, kTierStandard);
}

}  // namespace
}  // namespace morph::agent::shifter
