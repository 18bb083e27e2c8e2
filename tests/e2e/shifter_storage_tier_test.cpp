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
#include "tests/support/requirements.h"
#include "tests/support/testbed.h"

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
  explicit ReadSampler(const test::Testbed& bed) : bed_(bed) {
    thread_ = std::thread([this] {
      while (!stop_) {
        const uint64_t b = bed_.disk_read_bytes();
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
  const test::Testbed& bed_;
  mutable std::mutex mu_;
  std::vector<Sample> samples_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

struct ShifterStorageTier : test::OnTestbed<ShifterStorageTier> {
  static test::BedSpec bed_spec() { return {test::unique_prefix("shift-tier")}; }

 protected:
  void SetUpOnBed() override {
    connect({});
    pool = bed().dir();
    console = bed().vm().console;
    ASSERT_TRUE(bed().load("disk_read=2M"));
  }
  void TearDownOnBed() override {
    if (engine) engine->controller_lost();  // back to the standard pool whatever happened
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
    return engine->shift({++next_id, bed().vm().name, {{Resource::storage_tier, tier, {}}}, lease});
  }

  std::string source(unsigned flags = 0) const {
    virDomainPtr d = virDomainLookupByName(bed().conn(), bed().vm().name.c_str());
    if (d == nullptr) return "no domain";
    char* raw = virDomainGetXMLDesc(d, flags);
    virDomainFree(d);
    if (raw == nullptr) return "no xml";
    std::string xml(raw);
    free(raw);  // NOLINT(cppcoreguidelines-no-malloc)
    auto disk = find_disk(xml, "vda");
    return disk ? disk->source : disk.error().what();
  }

  // One move of the disk to `tier` through the engine, timed: in force as asked, and the disk's source `path` in
  // the live and the persistent definition.
  struct TimedMove {
    SteadyClock::time_point start, done;
    double ms = 0;
  };
  void move_to(int64_t tier, const std::string& path, TimedMove* m) {
    m->start = SteadyClock::now();
    ShiftOutcome out = shift(tier);
    m->ms = ms_since(m->start);
    ASSERT_TRUE(out.ok()) << out.error->what();
    m->done = SteadyClock::now();
    EXPECT_EQ(out.in_force.storage_tier, tier);
    EXPECT_EQ(source(), path);
    EXPECT_EQ(source(VIR_DOMAIN_XML_INACTIVE), path) << "a restart must boot from the copy";
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

  std::unique_ptr<LibvirtMechanisms> mech;
  std::unique_ptr<ShiftEngine> engine;
  std::string pool, console;
  uint64_t next_id = static_cast<uint64_t>(WallClock::now().time_since_epoch().count());
};

TEST_F(ShifterStorageTier, DiskMovesToFastAndBackWhileTheGuestReads) {
  std::this_thread::sleep_for(3s);  // the reader gets going
  ReadSampler reads(bed());
  const std::string original = source();
  ASSERT_EQ(original, pool + "/standard/" + bed().vm().name + ".raw");
  std::this_thread::sleep_for(1500ms);

  const std::string fast_copy = pool + "/fast/" + bed().vm().name + "-vda.raw";
  TimedMove to_fast, back;
  ASSERT_NO_FATAL_FAILURE(move_to(kTierFast, fast_copy, &to_fast));
  EXPECT_FALSE(fs::exists(original)) << "the old file is removed after the pivot";
  EXPECT_TRUE(fs::exists(fast_copy));
  std::this_thread::sleep_for(2s);

  ASSERT_NO_FATAL_FAILURE(move_to(kTierStandard, pool + "/standard/" + bed().vm().name + "-vda.raw", &back));
  EXPECT_FALSE(fs::exists(fast_copy)) << "the fast pool's RAM is given back";
  std::this_thread::sleep_for(2s);
  reads.stop();

  const double stall = reads.longest_stall_ms();
  const uint64_t during_fast = reads.read_between(to_fast.start, to_fast.done + 1s);
  const uint64_t on_fast = reads.read_between(to_fast.done, back.start);
  const uint64_t during_back = reads.read_between(back.start, back.done + 1s);
  const uint64_t after = reads.read_between(back.done, SteadyClock::now());
  std::cout << "storage move to fast " << to_fast.ms << " ms, back to standard " << back.ms
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
  virDomainPtr dom = virDomainLookupByName(bed().conn(), bed().vm().name.c_str());
  ASSERT_NE(dom, nullptr);
  LibvirtBlockCopy ops(dom, 0);
  for (int round = 0; round < 3; ++round) {
    for (int64_t tier : {kTierFast, kTierStandard}) {
      auto mv = move_disk_to_tier(ops, bed().vm().name, "vda", tier, {}, {});
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
  ReadSampler reads(bed());
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
