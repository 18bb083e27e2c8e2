// morph-agent's command-line logic without libvirt or BPF: the checks of `shift`'s arguments (each bad one
// named, before anything is touched), `kpis --interval`, and the two output formats of `kpis`.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "hostagent/cli/kpis_command.h"
#include "hostagent/cli/shift_command.h"

namespace morph::agent::cli {
namespace {

using namespace std::chrono_literals;

TEST(AgentShiftArgs, ValuesAndLeases) {
  auto p = parse_shift_args({.vm = "vm1", .resource = "cpu", .value = "1500"});
  ASSERT_TRUE(p.ok()) << p.error().what();
  EXPECT_EQ(p->adjustment.resource, Resource::cpu);
  EXPECT_EQ(p->adjustment.value, 1500);
  EXPECT_EQ(p->lease, std::chrono::hours(24 * 365));  // no --lease: the values stay

  p = parse_shift_args({.vm = "vm1", .resource = "vcpu_pin", .value = "0-2,5"});
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->adjustment.target, "0-2,5");
  EXPECT_EQ(p->adjustment.value, 4);  // host cpus in the list

  for (auto [lease, ms] : {std::pair{"30s", 30000}, {"500ms", 500}, {"30", 30000}, {"1m30s", 90000}, {"0.5", 500}}) {
    p = parse_shift_args({.vm = "vm1", .resource = "disk_iops", .value = "100", .lease = lease});
    ASSERT_TRUE(p.ok()) << lease << ": " << p.error().what();
    EXPECT_EQ(p->lease.count(), ms) << lease;
  }
}

TEST(AgentShiftArgs, EachBadArgumentIsNamed) {
  struct Case {
    ShiftArgs args;
    std::string named;
  };
  const Case cases[] = {
      {{.vm = "vm1", .resource = "gpu", .value = "1"},
       "unknown resource 'gpu': one of cpu, memory, disk_iops, disk_bps, net_out_kbps, net_in_kbps, storage_tier, "
       "vcpu_pin, cpu_shares"},
      {{.vm = "vm1", .resource = "disk_iops", .value = "12x"}, "value '12x' is not an integer"},
      {{.vm = "vm1", .resource = "disk_iops", .value = ""}, "value '' is not an integer"},
      {{.vm = "vm1", .resource = "disk_iops", .value = "1", .lease = "10x"}, "--lease: '10x' is not a duration"},
      {{.vm = "vm1", .resource = "disk_iops", .value = "1", .lease = "-5s"}, "--lease: '-5s'"},
      {{.vm = "vm1", .resource = "disk_iops", .value = "1", .lease = "0"}, "--lease: '0' is not a lease of 1 ms"},
  };
  for (const auto& c : cases) {
    auto p = parse_shift_args(c.args);
    ASSERT_FALSE(p.ok()) << c.named;
    EXPECT_EQ(p.error().code(), Errc::invalid_argument);
    EXPECT_NE(p.error().message().find(c.named), std::string::npos) << p.error().message();
  }
  // The names the agent used before the one Resource enum still work.
  auto old = parse_shift_args({.vm = "vm1", .resource = "cpu_millicores", .value = "500"});
  ASSERT_TRUE(old.ok());
  EXPECT_EQ(old->adjustment.resource, Resource::cpu);
}

TEST(AgentKpisInterval, UnitsAndTheMinimum) {
  EXPECT_EQ(*parse_interval("1s"), 1000ms);
  EXPECT_EQ(*parse_interval("250ms"), 250ms);
  EXPECT_EQ(*parse_interval("2"), 2000ms);
  EXPECT_EQ(*parse_interval("0.1"), 100ms);
  auto below = parse_interval("50ms");
  ASSERT_FALSE(below.ok());
  EXPECT_EQ(below.error().message(), "interval '50ms' is below the minimum of 100ms");
  auto bad = parse_interval("fast");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("--interval: 'fast'"), std::string::npos) << bad.error().message();
}

kpi::VmKpis sample() {
  kpi::VmKpis k;
  k.uuid = "uuid-1";
  k.name = "vm1";
  k.interval_ns = 2'000'000'000;  // 2 s
  k.cpu_run_ns = 1'000'000'000;
  k.cpu_wait_ns = 200'000'000;
  k.cpu_throttled_ns = 5'000'000;
  k.blk_read_bytes = 4096 * 100;
  k.blk_read_ops = 100;
  k.blk_write_ops = 60;
  k.net_rx_bytes = 2048;
  k.net_rx_drops = 3;
  k.mem_rss_bytes = 512ull << 20;
  k.mem_balloon_kib = 1024;
  return k;
}

TEST(AgentKpisOutput, JsonLineHasEveryFieldOfTheRecord) {
  auto j = kpis_to_json(sample(), 42);
  EXPECT_EQ(j["timestamp_ns"], 42);
  EXPECT_EQ(j["uuid"], "uuid-1");
  EXPECT_EQ(j["cpu_wait_ns"], 200'000'000);
  EXPECT_EQ(j["mem_balloon_kib"], 1024);
  EXPECT_TRUE(j["runq_lat_us"].is_array());
  EXPECT_EQ(j.size(), 25u);  // every VmKpis field and the timestamp (docs/kpis.md)
}

TEST(AgentKpisOutput, TextLineIsPerSecondAndPercentOfTheInterval) {
  std::string line = kpis_to_text(sample());
  EXPECT_EQ(line.rfind("vm1 ", 0), 0u) << line;
  // CPU as a share of the interval; the wait share as common/kpi defines it: wait / (run + wait).
  EXPECT_NE(line.find("cpu   50.0% wait   16.7% thr    5.0ms"), std::string::npos) << line;
  EXPECT_NE(line.find("blk r    200.0KiB/s"), std::string::npos) << line;
  EXPECT_NE(line.find("    80 iops"), std::string::npos) << line;
  EXPECT_NE(line.find("net rx      1.0KiB/s"), std::string::npos) << line;
  EXPECT_NE(line.find("drops 3/0"), std::string::npos) << line;
  EXPECT_NE(line.find("rss 512MiB"), std::string::npos) << line;
  EXPECT_EQ(line.back(), '\n');
}

}  // namespace
}  // namespace morph::agent::cli
