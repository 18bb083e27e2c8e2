// The policer's token bucket under BPF_PROG_TEST_RUN: a table of packets (slot, time, size) through the
// policer_test_verdict entry point, which runs the same verdict code as the attached tc programs with
// the time taken from the context. Then the per-slot counters must add up to the table.
#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>

#include <array>
#include <cstring>
#include <vector>

#include "hostagent/shifter/net_policer.h"
#include "tests/support/requirements.h"

namespace morph::agent::shifter {
namespace {

constexpr uint32_t kPass = static_cast<uint32_t>(-1);  // TC_ACT_UNSPEC: continue to the next filter
constexpr uint32_t kDrop = 2;                          // TC_ACT_SHOT

struct Packet {
  const char* what;
  uint32_t ifindex;
  NetDirection dir;
  uint64_t t_ns;
  uint32_t len;
  uint32_t verdict;
};

constexpr uint64_t ms = 1'000'000;

class PolicerBpfTest : public ::testing::Test {
 protected:
  void SetUp() override {
    MORPH_REQUIRE_BPF();
    auto rt = BpfRuntime::load({.kpi = false, .policer_test_entry = true, .pin_dir = ""});
    ASSERT_TRUE(rt.ok()) << rt.error().what();
    auto p = NetPolicer::open(*rt);
    ASSERT_TRUE(p.ok()) << p.error().what();
    policer = std::move(p).value();
  }

  uint32_t run(const Packet& p) {
    std::vector<uint8_t> frame(p.len, 0);
    // Ethernet header with an IPv4 ethertype; the rest is payload the policer only counts.
    std::memset(frame.data(), 0xff, 12);
    frame[12] = 0x08;
    __sk_buff ctx{};
    ctx.cb[0] = p.ifindex;
    ctx.cb[1] = static_cast<uint32_t>(p.dir);
    ctx.cb[2] = static_cast<uint32_t>(p.t_ns >> 32);
    ctx.cb[3] = static_cast<uint32_t>(p.t_ns);
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_size_in = static_cast<uint32_t>(frame.size()),
                .ctx_in = &ctx, .ctx_size_in = sizeof(ctx), .repeat = 1);
    int err = bpf_prog_test_run_opts(policer->test_prog_fd(), &opts);
    EXPECT_EQ(err, 0) << p.what << ": " << std::strerror(-err);
    return opts.retval;
  }

  std::unique_ptr<NetPolicer> policer;
};

TEST_F(PolicerBpfTest, TokenBucketTable) {
  // Slot 10/out: 1000 B/s, burst 1500 B. Slot 10/in: 8000 B/s, burst 2000 B. Slot 11/out: not configured.
  ASSERT_TRUE(policer->configure(10, NetDirection::guest_out, 1000, 1500).ok());
  ASSERT_TRUE(policer->configure(10, NetDirection::guest_in, 8000, 2000).ok());
  const uint64_t t0 = 5'000'000'000ULL;  // above 2^32 ns, so both halves of the time matter
  const std::array table{
      Packet{"full bucket admits a burst", 10, NetDirection::guest_out, t0, 1000, kPass},
      Packet{"500 B left: 600 B dropped", 10, NetDirection::guest_out, t0, 600, kDrop},
      Packet{"+100 ms = +100 B: 600 B pass", 10, NetDirection::guest_out, t0 + 100 * ms, 600, kPass},
      Packet{"empty bucket drops", 10, NetDirection::guest_out, t0 + 100 * ms, 64, kDrop},
      Packet{"other direction has its own bucket", 10, NetDirection::guest_in, t0 + 100 * ms, 1500, kPass},
      Packet{"in: 500 B left", 10, NetDirection::guest_in, t0 + 100 * ms, 600, kDrop},
      Packet{"in: +50 ms at 8000 B/s = +400 B", 10, NetDirection::guest_in, t0 + 150 * ms, 900, kPass},
      Packet{"unconfigured slot passes", 11, NetDirection::guest_out, t0, 1500, kPass},
      Packet{"+1 s = +1000 B; 1500 B too big", 10, NetDirection::guest_out, t0 + 1100 * ms, 1500, kDrop},
      Packet{"... but 1000 B pass", 10, NetDirection::guest_out, t0 + 1100 * ms, 1000, kPass},
      Packet{"slow trickle still refills (1 ms = 1 B)", 10, NetDirection::guest_out, t0 + 1164 * ms, 64, kPass},
      Packet{"a long idle fills only to the burst", 10, NetDirection::guest_out, t0 + 100'000 * ms, 1500, kPass},
      Packet{"... nothing beyond it", 10, NetDirection::guest_out, t0 + 100'000 * ms, 64, kDrop},
      Packet{"time going backwards earns nothing", 10, NetDirection::guest_out, t0 + 99'000 * ms, 64, kDrop},
  };
  policer_stats want_out{}, want_in{};
  for (const Packet& p : table) {
    EXPECT_EQ(run(p), p.verdict) << p.what;
    if (p.ifindex != 10) continue;
    policer_stats& w = p.dir == NetDirection::guest_out ? want_out : want_in;
    (p.verdict == kPass ? w.pass_packets : w.drop_packets)++;
    (p.verdict == kPass ? w.pass_bytes : w.drop_bytes) += p.len;
  }
  for (auto [dir, want] : {std::pair{NetDirection::guest_out, want_out}, std::pair{NetDirection::guest_in, want_in}}) {
    auto got = policer->stats(10, dir);
    ASSERT_TRUE(got.ok()) << got.error().what();
    EXPECT_EQ(got->pass_packets, want.pass_packets);
    EXPECT_EQ(got->pass_bytes, want.pass_bytes);
    EXPECT_EQ(got->drop_packets, want.drop_packets);
    EXPECT_EQ(got->drop_bytes, want.drop_bytes);
  }
  auto none = policer->stats(11, NetDirection::guest_out);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->pass_packets, 0u);  // no limit: no accounting either
}

TEST_F(PolicerBpfTest, NewRateRestartsBucketFullAndZeroRemovesLimit) {
  ASSERT_TRUE(policer->configure(20, NetDirection::guest_out, 1000, 1000).ok());
  EXPECT_EQ(run({"drain", 20, NetDirection::guest_out, 1000 * ms, 1000, kPass}), kPass);
  EXPECT_EQ(run({"empty", 20, NetDirection::guest_out, 1000 * ms, 100, kDrop}), kDrop);
  ASSERT_TRUE(policer->configure(20, NetDirection::guest_out, 2000, 3000).ok());
  EXPECT_EQ(run({"new config, full bucket", 20, NetDirection::guest_out, 1000 * ms, 3000, kPass}), kPass);
  auto kbps = policer->limit(20, NetDirection::guest_out);
  ASSERT_TRUE(kbps.ok());
  EXPECT_EQ(*kbps, 16u);  // 2000 B/s = 16 kbit/s
  // set_limit(0) only touches maps (no attach needed to remove a limit).
  ASSERT_TRUE(policer->set_limit(20, NetDirection::guest_out, 0).ok());
  EXPECT_EQ(*policer->limit(20, NetDirection::guest_out), 0u);
  EXPECT_EQ(run({"no limit", 20, NetDirection::guest_out, 1000 * ms, 3000, kPass}), kPass);
}

TEST(PolicerBurst, CoversAGsoPacketAndTwentyMilliseconds) {
  EXPECT_EQ(NetPolicer::burst_for(1'250'000), 64u * 1024);    // 10 Mbit/s: 25 kB < 64 KiB
  EXPECT_EQ(NetPolicer::burst_for(125'000'000), 2'500'000u);  // 1 Gbit/s: 20 ms
}

}  // namespace
}  // namespace morph::agent::shifter
