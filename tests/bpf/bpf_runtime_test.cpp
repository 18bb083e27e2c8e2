// The agent's one BPF runtime against the real kernel: the probes and the policer share one loaded object
// (one set of maps; the probes read the drops of the policer's own programs from its map), a restarted
// runtime reuses the policer's pinned maps (limit, counters and bucket state), the pin directory separates
// two agents, and pinned maps of another layout leave the KPI programs loaded and say why.
#include "hostagent/bpf_runtime/bpf_runtime.h"

#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <net/if.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "hostagent/probes/kpi_probes.h"
#include "hostagent/shifter/net_policer.h"
#include "tests/support/requirements.h"

namespace morph::agent {
namespace {

using shifter::NetDirection;
using shifter::NetPolicer;

constexpr uint32_t kPass = static_cast<uint32_t>(-1);  // TC_ACT_UNSPEC
constexpr uint32_t kDrop = 2;                          // TC_ACT_SHOT

// The kernel's id of a loaded map.
uint32_t map_id(int fd) {
  bpf_map_info info{};
  uint32_t len = sizeof(info);
  return bpf_obj_get_info_by_fd(fd, &info, &len) == 0 ? info.id : 0;
}

// The maps a loaded program uses: id -> name.
std::map<uint32_t, std::string> maps_of(const bpf_program* prog) {
  std::map<uint32_t, std::string> out;
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &len) != 0) return out;
  std::vector<uint32_t> ids(info.nr_map_ids);
  info = bpf_prog_info{};
  info.nr_map_ids = static_cast<uint32_t>(ids.size());
  info.map_ids = reinterpret_cast<uint64_t>(ids.data());
  len = sizeof(info);
  if (bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &len) != 0) return out;
  for (uint32_t id : ids) {
    int fd = bpf_map_get_fd_by_id(id);
    if (fd < 0) continue;
    bpf_map_info m{};
    uint32_t mlen = sizeof(m);
    if (bpf_obj_get_info_by_fd(fd, &m, &mlen) == 0) out[id] = m.name;
    close(fd);
  }
  return out;
}

// A bpffs directory of this test's own, removed with whatever is pinned in it.
struct PinDir {
  std::string path;
  explicit PinDir(const std::string& tag) : path("/sys/fs/bpf/morph-test-" + tag + "-" + std::to_string(getpid())) {
    std::filesystem::remove_all(path);
  }
  ~PinDir() { std::filesystem::remove_all(path); }
};

// One packet of `len` bytes through a tc program under BPF_PROG_TEST_RUN: `ctx` as the hook would give it.
uint32_t run_tc(int prog_fd, __sk_buff ctx, uint32_t len) {
  std::vector<uint8_t> frame(len, 0);
  frame[12] = 0x08;  // EtherType IPv4
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_size_in = len, .ctx_in = &ctx,
              .ctx_size_in = sizeof(ctx), .repeat = 1);
  int err = bpf_prog_test_run_opts(prog_fd, &opts);
  EXPECT_EQ(err, 0) << std::strerror(-err);
  return opts.retval;
}

// Through the policer's test entry: tap `ifindex`, direction, time `now_ns`.
uint32_t police(const NetPolicer& policer, uint32_t ifindex, NetDirection dir, uint64_t now_ns, uint32_t len) {
  __sk_buff ctx{};
  ctx.cb[0] = ifindex;
  ctx.cb[1] = static_cast<uint32_t>(dir);
  ctx.cb[2] = static_cast<uint32_t>(now_ns >> 32);
  ctx.cb[3] = static_cast<uint32_t>(now_ns);
  return run_tc(policer.test_prog_fd(), ctx, len);
}

TEST(BpfRuntime, ProbesAndPolicerShareOneLoadedObject) {
  MORPH_REQUIRE_BPF();
  auto rt = BpfRuntime::load({.policer_test_entry = true, .pin_dir = ""});
  ASSERT_TRUE(rt.ok()) << rt.error().describe();
  std::shared_ptr<BpfRuntime> runtime = *rt;
  auto probes = KpiProbes::create(runtime);
  ASSERT_TRUE(probes.ok()) << probes.error().describe();
  auto policer = NetPolicer::open(runtime);
  ASSERT_TRUE(policer.ok()) << policer.error().describe();

  // One load: the programs of both users, as the kernel holds them, use one set of maps (each name once),
  // and those are the maps each user was handed.
  std::vector<const bpf_program*> progs(runtime->kpi()->tracing.begin(), runtime->kpi()->tracing.end());
  for (const bpf_program* p : {runtime->kpi()->tc_ingress, runtime->kpi()->tc_egress, runtime->policer()->tap_ingress,
                               runtime->policer()->tap_egress, runtime->policer()->test_verdict})
    progs.push_back(p);
  std::map<std::string, std::set<uint32_t>> ids_by_name;
  for (const bpf_program* p : progs)
    for (const auto& [id, name] : maps_of(p)) ids_by_name[name].insert(id);
  for (const char* name : {"vm_stats", "tap_slots", "cpu_state", "policer_cfg", "policer_bucket", "policer_stats"})
    EXPECT_EQ(ids_by_name[name].size(), 1u) << name;
  for (const auto& [name, ids] : ids_by_name) EXPECT_EQ(ids.size(), 1u) << "two maps named " << name;
  auto id_of = [&](const char* name) { return ids_by_name[name].empty() ? 0u : *ids_by_name[name].begin(); };
  EXPECT_EQ(map_id(bpf_map__fd(runtime->kpi()->vm_stats)), id_of("vm_stats"));
  EXPECT_EQ(map_id(bpf_map__fd(runtime->kpi()->tap_slots)), id_of("tap_slots"));
  EXPECT_EQ(map_id(bpf_map__fd(runtime->policer()->stats)), id_of("policer_stats"));
  EXPECT_EQ(map_id(bpf_map__fd(runtime->policer()->cfg)), id_of("policer_cfg"));

  // The probes see the drops of the policer's own programs: a tap (a veth, left down so no traffic of the
  // kernel's own is counted) registered as a VM's, packets through the KPI programs and then the policer
  // as on the tap's hooks (KPI filter first), 1000 B/s and a 1500 B burst each way.
  const std::string a = "mkr" + std::to_string(getpid() % 100000), b = a + "p";
  ASSERT_EQ(std::system(("ip link add " + a + " type veth peer name " + b).c_str()), 0);
  const uint32_t ifindex = if_nametoindex(a.c_str());
  ASSERT_NE(ifindex, 0u);
  VmInfo vm;
  vm.uuid = "00000000-0000-0000-0000-0000000000cc";
  vm.name = "shared-vm";
  vm.cgroup_id = ~0ull - 1;  // known by id only; this test counts no CPU
  vm.taps.push_back({a, ifindex, ""});
  auto added = (*probes)->add_vm(vm);
  ASSERT_TRUE(added.ok()) << added.error().describe();
  for (NetDirection dir : {NetDirection::guest_out, NetDirection::guest_in})
    ASSERT_TRUE((*policer)->configure(ifindex, dir, 1000, 1500).ok());
  const uint64_t t0 = 7'000'000'000ULL;
  uint32_t tx_policed = 0, rx_policed = 0, rx_delivered = 0;
  for (uint32_t len : {1000u, 600u, 700u}) {
    __sk_buff ctx{};
    ctx.ifindex = ifindex;
    EXPECT_EQ(run_tc(bpf_program__fd(runtime->kpi()->tc_ingress), ctx, len), kPass);
    EXPECT_EQ(run_tc(bpf_program__fd(runtime->kpi()->tc_egress), ctx, len), kPass);
    const uint32_t out = police(**policer, ifindex, NetDirection::guest_out, t0, len);
    const uint32_t in = police(**policer, ifindex, NetDirection::guest_in, t0, len);
    EXPECT_EQ(out, len == 1000 ? kPass : kDrop) << len;
    EXPECT_EQ(in, out) << len;
    (out == kDrop ? tx_policed : rx_delivered) += len;
    if (in == kDrop) rx_policed += len;
  }
  auto kpis = (*probes)->read();
  ASSERT_TRUE(kpis.ok()) << kpis.error().describe();
  ASSERT_EQ(kpis->size(), 1u);
  const kpi::VmKpis& k = kpis->front();
  EXPECT_EQ(k.net_tx_bytes, 2300u) << "the guest sent all three";
  EXPECT_EQ(k.net_tx_pkts, 3u);
  EXPECT_EQ(k.net_tx_policed_bytes, tx_policed);
  EXPECT_EQ(tx_policed, 1300u);
  EXPECT_EQ(k.net_rx_bytes, rx_delivered) << "the guest received only what the policer passed";
  EXPECT_EQ(k.net_rx_pkts, 1u);
  EXPECT_EQ(k.net_rx_policed_bytes, rx_policed);
  // Drops: the policer's two each way, plus the down veth's own kernel drops (none without traffic).
  EXPECT_EQ(k.net_tx_drops, 2u);
  EXPECT_EQ(k.net_rx_drops, 2u);
  ASSERT_TRUE((*probes)->remove_vm(vm.uuid).ok());
  std::system(("ip link del " + a).c_str());
}

TEST(BpfRuntime, RestartReusesThePinnedPolicerStateAndThePinDirSeparatesAgents) {
  MORPH_REQUIRE_BPF();
  PinDir dir("restart"), other("other");
  const uint32_t tap = 42;
  const uint64_t t0 = 9'000'000'000ULL;
  uint32_t cfg_id = 0;
  {
    // The first agent: the policer alone, as `morph-agent shift` loads it.
    auto rt = BpfRuntime::load({.kpi = false, .policer_test_entry = true, .pin_dir = dir.path});
    ASSERT_TRUE(rt.ok()) << rt.error().describe();
    auto policer = NetPolicer::open(*rt);
    ASSERT_TRUE(policer.ok()) << policer.error().describe();
    ASSERT_TRUE((*policer)->configure(tap, NetDirection::guest_out, 1000, 1500).ok());
    EXPECT_EQ(police(**policer, tap, NetDirection::guest_out, t0, 1500), kPass);
    EXPECT_EQ(police(**policer, tap, NetDirection::guest_out, t0, 100), kDrop);
    cfg_id = map_id(bpf_map__fd((*rt)->policer()->cfg));
    ASSERT_NE(cfg_id, 0u);
  }
  for (const char* name : {"policer_cfg", "policer_bucket", "policer_stats"})
    EXPECT_TRUE(std::filesystem::exists(dir.path + "/" + name)) << name << " is not pinned";

  // The next agent, as `morph-agent run` loads it (KPI programs and policer), reads everything back.
  auto rt = BpfRuntime::load({.policer_test_entry = true, .pin_dir = dir.path});
  ASSERT_TRUE(rt.ok()) << rt.error().describe();
  ASSERT_NE((*rt)->kpi(), nullptr);
  auto policer = NetPolicer::open(*rt);
  ASSERT_TRUE(policer.ok()) << policer.error().describe();
  EXPECT_EQ(map_id(bpf_map__fd((*rt)->policer()->cfg)), cfg_id) << "policer_cfg was created again, not reused";
  auto kbps = (*policer)->limit(tap, NetDirection::guest_out);
  ASSERT_TRUE(kbps.ok());
  EXPECT_EQ(*kbps, 8u);  // 1000 B/s
  auto stats = (*policer)->stats(tap, NetDirection::guest_out);
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->pass_packets, 1u);
  EXPECT_EQ(stats->pass_bytes, 1500u);
  EXPECT_EQ(stats->drop_packets, 1u);
  EXPECT_EQ(stats->drop_bytes, 100u);
  // The bucket too: still empty at t0 (a new bucket map would start full and pass this packet).
  EXPECT_EQ(police(**policer, tap, NetDirection::guest_out, t0, 64), kDrop);

  // A second agent on this kernel with its own directory shares none of it.
  auto rt2 = BpfRuntime::load({.kpi = false, .pin_dir = other.path});
  ASSERT_TRUE(rt2.ok()) << rt2.error().describe();
  auto policer2 = NetPolicer::open(*rt2);
  ASSERT_TRUE(policer2.ok());
  EXPECT_NE(map_id(bpf_map__fd((*rt2)->policer()->cfg)), cfg_id);
  EXPECT_EQ(*(*policer2)->limit(tap, NetDirection::guest_out), 0u);
}

TEST(BpfRuntime, PinnedMapsOfAnotherLayoutLeaveTheKpiProgramsLoadedAndSayWhy) {
  MORPH_REQUIRE_BPF();
  PinDir dir("layout");
  std::filesystem::create_directories(dir.path);
  // A policer_cfg of another layout, as an agent of another version could have left.
  int fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "policer_cfg", 4, 4, 1, nullptr);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  const uint32_t foreign = map_id(fd);
  ASSERT_EQ(bpf_obj_pin(fd, (dir.path + "/policer_cfg").c_str()), 0) << std::strerror(errno);
  close(fd);

  auto rt = BpfRuntime::load({.pin_dir = dir.path});
  ASSERT_TRUE(rt.ok()) << rt.error().describe();
  EXPECT_NE((*rt)->kpi(), nullptr) << "the KPI programs do not need the policer";
  EXPECT_EQ((*rt)->policer(), nullptr);
  EXPECT_NE((*rt)->policer_error().find(dir.path), std::string::npos) << (*rt)->policer_error();
  auto policer = NetPolicer::open(*rt);
  ASSERT_FALSE(policer.ok());
  EXPECT_EQ(policer.error().code(), Errc::unavailable);
  EXPECT_NE(policer.error().what().find(dir.path), std::string::npos) << policer.error().what();

  // The policer alone cannot load at all, and says where.
  auto alone = BpfRuntime::load({.kpi = false, .pin_dir = dir.path});
  ASSERT_FALSE(alone.ok());
  EXPECT_NE(alone.error().what().find(dir.path), std::string::npos) << alone.error().what();
  // Nothing was replaced or added: the operator decides (docs/operations.md).
  int pinned = bpf_obj_get((dir.path + "/policer_cfg").c_str());
  ASSERT_GE(pinned, 0);
  EXPECT_EQ(map_id(pinned), foreign);
  close(pinned);
  EXPECT_FALSE(std::filesystem::exists(dir.path + "/policer_stats"));
}

// `morph-agent kpis` reads the drops of a policer an agent pinned, and never creates policer state itself.
TEST(BpfRuntime, PinnedOnlyReadsAnAgentsPolicerAndCreatesNothing) {
  MORPH_REQUIRE_BPF();
  PinDir dir("readonly");
  auto none = BpfRuntime::load({.pin_dir = dir.path, .policer_pinned_only = true});
  ASSERT_TRUE(none.ok()) << none.error().describe();
  EXPECT_NE((*none)->kpi(), nullptr);
  EXPECT_EQ((*none)->policer(), nullptr) << "no agent pinned a policer here";
  EXPECT_NE((*none)->policer_error().find("is not pinned"), std::string::npos) << (*none)->policer_error();
  EXPECT_FALSE(std::filesystem::exists(dir.path)) << "a look at the KPIs created the pin directory";
  auto alone = BpfRuntime::load({.kpi = false, .pin_dir = dir.path, .policer_pinned_only = true});
  ASSERT_FALSE(alone.ok());
  EXPECT_EQ(alone.error().code(), Errc::unavailable);

  // An agent pins its policer; the reader then shares its maps.
  auto agent = BpfRuntime::load({.kpi = false, .pin_dir = dir.path});
  ASSERT_TRUE(agent.ok()) << agent.error().describe();
  const uint32_t cfg_id = map_id(bpf_map__fd((*agent)->policer()->cfg));
  auto reader = BpfRuntime::load({.pin_dir = dir.path, .policer_pinned_only = true});
  ASSERT_TRUE(reader.ok()) << reader.error().describe();
  ASSERT_NE((*reader)->policer(), nullptr) << (*reader)->policer_error();
  EXPECT_EQ(map_id(bpf_map__fd((*reader)->policer()->cfg)), cfg_id);
}

TEST(BpfRuntime, NeitherPartIsABadRequest) {
  auto rt = BpfRuntime::load({.kpi = false, .policer = false});
  ASSERT_FALSE(rt.ok());
  EXPECT_EQ(rt.error().code(), Errc::invalid_argument);
}

}  // namespace
}  // namespace morph::agent
