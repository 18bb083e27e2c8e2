// Storage tier moves on a real test-bed VM (TCG guest, morph-load reading /dev/vda with O_DIRECT): the
// disk goes to the fast pool and back while the guest reads, without an I/O error in the guest and with
// its reads advancing throughout (libvirt's rd_bytes, sampled every 100 ms); the domain's disk source
// follows, in the live and the persistent definition; the file moved away from is gone. A lease expiry
// moves it back, and a copy that cannot finish in time is cancelled with the guest still on its disk.
#include <gtest/gtest.h>
#include <libvirt/libvirt.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "hostagent/shifter/libvirt_mechanisms.h"
#include "hostagent/shifter/shift_engine.h"
#include "hostagent/shifter/storage_tier.h"
#include "tests/e2e/shifter_testbed.h"
#include "tests/support/requirements.h"

namespace morph::agent::shifter {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

double ms_since(SteadyClock::time_point t) {
  return std::chrono::duration<double, std::milli>(SteadyClock::now() - t).count();
}

// libvirt's rd_bytes of the VM's disk every 100 ms, on a thread of its own.
class ReadSampler {
 public:
  ReadSampler(virConnectPtr conn, std::string vm) : conn_(conn), vm_(std::move(vm)) {
    thread_ = std::thread([this] {
      while (!stop_) {
        const uint64_t b = rd_bytes();
        {
          std::lock_guard lock(mu_);
          samples_.push_back({SteadyClock::now(), b});
        }
        std::this_thread::sleep_for(100ms);
      }
    });
  }
  ~ReadSampler() { stop(); }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  uint64_t rd_bytes() const {
    virDomainPtr d = virDomainLookupByName(conn_, vm_.c_str());
    if (d == nullptr) return 0;
    virDomainBlockStatsStruct s{};
    virDomainBlockStats(d, "vda", &s, sizeof s);
    virDomainFree(d);
    return s.rd_bytes > 0 ? static_cast<uint64_t>(s.rd_bytes) : 0;
  }
  // Longest time rd_bytes stood still between samples, in ms.
  double longest_stall_ms() const {
    std::lock_guard lock(mu_);
    double worst = 0;
    size_t still_since = 0;
    for (size_t i = 1; i < samples_.size(); ++i) {
      if (samples_[i].bytes != samples_[still_since].bytes) {
        still_since = i;
        continue;
      }
      worst =
          std::max(worst, std::chrono::duration<double, std::milli>(samples_[i].at - samples_[still_since].at).count());
    }
    return worst;
  }
  // Bytes read between two instants (nearest samples).
  uint64_t read_between(SteadyClock::time_point a, SteadyClock::time_point b) const {
    std::lock_guard lock(mu_);
    uint64_t first = 0, last = 0;
    bool have = false;
    for (const auto& s : samples_) {
      if (s.at < a || s.at > b) continue;
      if (!have) first = s.bytes;
      last = s.bytes;
      have = true;
    }
    return last - first;
  }

 private:
  struct Sample {
    SteadyClock::time_point at;
    uint64_t bytes;
  };
  virConnectPtr conn_;
  std::string vm_;
  mutable std::mutex mu_;
  std::vector<Sample> samples_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

class ShifterStorageTier : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { bed = new test::ShiftTestbed("tier"); }
  static void TearDownTestSuite() {
    delete bed;
    bed = nullptr;
  }

  void SetUp() override {
    MORPH_REQUIRE_ROOT();
    MORPH_REQUIRE(bed->error());
    connect({});
    pool = "/var/lib/morph-testbed/" + bed->prefix();
    console = pool + "/logs/" + bed->vm() + ".console.log";
    ASSERT_TRUE(bed->load("disk_read=2M"));
  }
  void TearDown() override {
    if (engine) engine->controller_lost();  // back to the standard pool whatever happened
    if (bed && bed->error().empty()) bed->load("cpu=0 disk_read=0 disk_write=0 net_tx=0 net_rx=0");
  }

  void connect(LibvirtMechanisms::Options opt) {
    engine.reset();
    auto m = LibvirtMechanisms::connect(opt, nullptr);
    ASSERT_TRUE(m.ok()) << m.error().what();
    mech = std::move(m).value();
    engine = std::make_unique<ShiftEngine>(
        *mech, [] { return WallClock::now(); }, ShiftEngine::Options{});
  }

  ShiftOutcome shift(int64_t tier, std::chrono::milliseconds lease = 120s) {
    return engine->shift({++next_id, bed->vm(), {{Resource::storage_tier, tier, {}}}, lease});
  }

  std::string source(unsigned flags = 0) const {
    virDomainPtr d = virDomainLookupByName(bed->conn(), bed->vm().c_str());
    if (d == nullptr) return "no domain";
    char* raw = virDomainGetXMLDesc(d, flags);
    virDomainFree(d);
    if (raw == nullptr) return "no xml";
    std::string xml(raw);
    free(raw);  // NOLINT(cppcoreguidelines-no-malloc)
    auto disk = find_disk(xml, "vda");
    return disk ? disk->source : disk.error().what();
  }

  // Lines of the guest's serial log that report a disk error (kernel or morph-load).
  std::vector<std::string> guest_io_errors() const {
    std::vector<std::string> out;
    std::ifstream f(console);
    for (std::string line; std::getline(f, line);)
      if (line.find("I/O error") != std::string::npos || line.find("blk_update_request") != std::string::npos ||
          (line.find("/dev/vda") != std::string::npos && line.find("failed") != std::string::npos))
        out.push_back(line);
    return out;
  }

  static inline test::ShiftTestbed* bed = nullptr;
  std::unique_ptr<LibvirtMechanisms> mech;
  std::unique_ptr<ShiftEngine> engine;
  std::string pool, console;
  uint64_t next_id = static_cast<uint64_t>(WallClock::now().time_since_epoch().count());
};

TEST_F(ShifterStorageTier, DiskMovesToFastAndBackWhileTheGuestReads) {
  std::this_thread::sleep_for(3s);  // the reader gets going
  ReadSampler reads(bed->conn(), bed->vm());
  const std::string original = source();
  ASSERT_EQ(original, pool + "/standard/" + bed->vm() + ".raw");
  std::this_thread::sleep_for(1500ms);

  const auto t_fast = SteadyClock::now();
  ShiftOutcome out = shift(kTierFast);
  const double to_fast_ms = ms_since(t_fast);
  ASSERT_TRUE(out.ok()) << out.error->what();
  const auto fast_done = SteadyClock::now();
  EXPECT_EQ(out.in_force.storage_tier, kTierFast);
  const std::string fast_copy = pool + "/fast/" + bed->vm() + "-vda.raw";
  EXPECT_EQ(source(), fast_copy);
  EXPECT_EQ(source(VIR_DOMAIN_XML_INACTIVE), fast_copy) << "a restart must boot from the copy";
  EXPECT_FALSE(fs::exists(original)) << "the old file is removed after the pivot";
  EXPECT_TRUE(fs::exists(fast_copy));
  std::this_thread::sleep_for(2s);

  const auto t_back = SteadyClock::now();
  out = shift(kTierStandard);
  const double to_standard_ms = ms_since(t_back);
  ASSERT_TRUE(out.ok()) << out.error->what();
  const auto back_done = SteadyClock::now();
  EXPECT_EQ(out.in_force.storage_tier, kTierStandard);
  const std::string standard_copy = pool + "/standard/" + bed->vm() + "-vda.raw";
  EXPECT_EQ(source(), standard_copy);
  EXPECT_EQ(source(VIR_DOMAIN_XML_INACTIVE), standard_copy);
  EXPECT_FALSE(fs::exists(fast_copy)) << "the fast pool's RAM is given back";
  std::this_thread::sleep_for(2s);
  reads.stop();

  const double stall = reads.longest_stall_ms();
  const uint64_t during_fast = reads.read_between(t_fast, fast_done + 1s);
  const uint64_t on_fast = reads.read_between(fast_done, t_back);
  const uint64_t during_back = reads.read_between(t_back, back_done + 1s);
  const uint64_t after = reads.read_between(back_done, SteadyClock::now());
  std::cout << "storage move to fast " << to_fast_ms << " ms, back to standard " << to_standard_ms
            << " ms (shift() wall time, 256 MiB disk with 64 MiB allocated, TCG guest reading 2 MiB/s)\n"
            << "guest reads: " << during_fast << " B in the move to fast (+1 s), " << on_fast << " B on fast, "
            << during_back << " B in the move back (+1 s), " << after << " B after; longest stall " << stall << " ms\n";
  EXPECT_GT(during_fast, 0u);
  EXPECT_GT(on_fast, 1u << 20) << "about 2 MiB/s for 2 s on the fast pool";
  EXPECT_GT(during_back, 0u);
  EXPECT_GT(after, 1u << 20);
  EXPECT_LT(stall, 1500.0) << "the reader stood still too long";
  EXPECT_TRUE(guest_io_errors().empty()) << guest_io_errors().front();
}

TEST_F(ShifterStorageTier, CopyAndPivotTimesOverThreeRoundTrips) {
  std::this_thread::sleep_for(1s);
  virDomainPtr dom = virDomainLookupByName(bed->conn(), bed->vm().c_str());
  ASSERT_NE(dom, nullptr);
  LibvirtBlockCopy ops(dom, 0);
  for (int round = 0; round < 3; ++round) {
    for (int64_t tier : {kTierFast, kTierStandard}) {
      auto mv = move_disk_to_tier(ops, bed->vm(), "vda", tier, {}, {});
      ASSERT_TRUE(mv.ok()) << mv.error().what();
      EXPECT_TRUE(mv->moved());
      EXPECT_TRUE(mv->warning.empty()) << mv->warning;
      std::cout << "round " << round << " to " << (tier == kTierFast ? "fast    " : "standard") << ": copy "
                << mv->copy.count() << " ms, pivot " << mv->pivot.count() << " ms\n";
    }
  }
  virDomainFree(dom);
  EXPECT_TRUE(guest_io_errors().empty()) << guest_io_errors().front();
}

TEST_F(ShifterStorageTier, LeaseExpiryMovesTheDiskBackToStandard) {
  ShiftOutcome out = shift(kTierFast, 1s);
  ASSERT_TRUE(out.ok()) << out.error->what();
  ASSERT_EQ(out.in_force.storage_tier, kTierFast);
  std::this_thread::sleep_for(1100ms);
  const auto t0 = SteadyClock::now();
  auto events = engine->expire_due();
  const double revert_ms = ms_since(t0);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_FALSE(events[0].error.has_value()) << events[0].error->what();
  EXPECT_EQ(events[0].in_force.storage_tier, kTierStandard);
  EXPECT_EQ(source().rfind(pool + "/standard/", 0), 0u) << source();
  std::cout << "lease revert (move back to standard) " << revert_ms << " ms\n";
  EXPECT_TRUE(guest_io_errors().empty()) << guest_io_errors().front();
}

TEST_F(ShifterStorageTier, CopyThatMissesItsDeadlineIsCancelledAndTheGuestKeepsItsDisk) {
  // 1 MiB/s cannot copy the 64 MiB the disk holds within 1.5 s.
  LibvirtMechanisms::Options opt;
  opt.storage_move.timeout = 1500ms;
  opt.storage_move.bandwidth_bytes_per_s = 1u << 20;
  connect(opt);
  const std::string before = source();
  ReadSampler reads(bed->conn(), bed->vm());
  const auto t0 = SteadyClock::now();
  ShiftOutcome out = shift(kTierFast);
  const double failed_after_ms = ms_since(t0);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error->code(), Errc::unavailable);
  EXPECT_NE(out.error->message().find("not ready after 1500 ms"), std::string::npos) << out.error->message();
  EXPECT_EQ(out.in_force.storage_tier, kTierStandard);
  EXPECT_EQ(source(), before);
  EXPECT_TRUE(fs::is_empty(pool + "/fast/")) << "the partial copy is removed";
  EXPECT_TRUE(fs::exists(before));
  std::this_thread::sleep_for(2s);
  reads.stop();
  std::cout << "cancelled after " << failed_after_ms << " ms: " << out.error->message() << "\n";
  EXPECT_GT(reads.read_between(t0, SteadyClock::now()), 1u << 20) << "the guest kept reading its disk";
  EXPECT_TRUE(guest_io_errors().empty()) << guest_io_errors().front();
}

}  // namespace
}  // namespace morph::agent::shifter
