#include "hostagent/agent_runtime/agent_runtime.h"

#include <spdlog/spdlog.h>

#include "common/config_schemas.h"
#include "hostagent/agent_runtime/engine_shift_handler.h"
#include "hostagent/agent_runtime/probe_kpi_source.h"
#include "hostagent/inventory/inventory.h"
#include "hostagent/lease_state/lease_state_file.h"
#include "hostagent/probes/inventory_vm_source.h"
#include "hostagent/shifter/libvirt_mechanisms.h"
#include "hostagent/shifter/net_policer.h"

namespace morph::agent {

std::vector<std::pair<msg::Resource, int64_t>> host_capacity(const config::Config& cfg) {
  auto cap = host_cpu_memory_capacity();
  const std::pair<msg::Resource, const char*> keys[] = {
      {msg::Resource::disk_iops, "capacity.disk_iops"},
      {msg::Resource::disk_bps, "capacity.disk_bps"},
      {msg::Resource::net_out_kbps, "capacity.net_out_kbps"},
      {msg::Resource::net_in_kbps, "capacity.net_in_kbps"},
  };
  for (auto& [r, key] : keys) {
    if (!cfg.schema().find(key)) continue;
    const config::Key* k = cfg.schema().find(key);
    const int64_t v = k->type() == config::Type::bytes ? int64_t(cfg.get_bytes(key)) : cfg.get_int(key);
    if (v > 0) cap.emplace_back(r, v);
  }
  return cap;
}

namespace {

class LibvirtHostRuntime final : public HostRuntime {
 public:
  std::shared_ptr<Inventory> inventory;
  std::shared_ptr<ProbeKpiSource> source;
  std::unique_ptr<shifter::NetPolicer> policer;
  std::unique_ptr<shifter::LibvirtMechanisms> mechanisms;
  std::shared_ptr<shifter::ShiftEngine> engine;
  std::shared_ptr<EngineShiftHandler> handler;
  std::vector<std::pair<msg::Resource, int64_t>> capacity;

  ~LibvirtHostRuntime() override { stop(); }

  HostDescription host() override { return {capacity, with_engine_baselines(source->vms())}; }
  // A HostHello must never call a shifted value the baseline, or the next allocation comes on top of it
  // (250 mc baseline + 500 shifted + 500 = 1250 mc, refused for a 1-vCPU VM). The inventory takes a
  // persistent domain's baseline from its definition, which shifts never touch; a transient domain has
  // only its live values, so the engine's baseline (captured before the VM's first shift) wins when it has
  // one. For a persistent domain the two agree, except after an agent restart that lost its state file
  // while a shift was in force: then the engine's is the shifted value (a known limit, docs/operations.md).
  std::vector<VmInfo> with_engine_baselines(std::vector<VmInfo> vms) const {
    if (!engine) return vms;
    for (VmInfo& v : vms)
      if (auto b = engine->baseline(v.uuid); b && b->cpu_millicores > 0)
        v.baseline.cpu_millicores = static_cast<uint32_t>(b->cpu_millicores);
    return vms;
  }
  std::shared_ptr<KpiSource> kpi_source() override { return source; }
  std::shared_ptr<ShiftHandler> shift_handler() override {
    if (handler) return handler;
    return std::make_shared<ShiftUnavailable>();
  }
  Status start(Uplink& uplink) override {
    source->on_vms_changed([this, &uplink](std::vector<VmInfo> vms) {
      spdlog::info("running VMs changed ({} now); sending HostHello again", vms.size());
      // A VM that left (migrated away, stopped) takes nothing of this host's leases with it: no revert
      // reaches for it later. Its new host's agent reports it with the values in force there.
      if (engine) engine->forget_departed();
      uplink.set_host({capacity, with_engine_baselines(std::move(vms))});
    });
    if (handler)
      handler->start([&uplink](msg::ShiftOutcome o) { uplink.report(std::move(o)); },
                     [&uplink] { return uplink.stats().controller_up.load(); });
    return {};
  }
  void stop() override {
    if (handler) handler->stop();
  }
};

}  // namespace

Result<std::unique_ptr<HostRuntime>> make_host_runtime(const RuntimeContext& ctx) {
  const config::Config& cfg = ctx.config;
  auto rt = std::make_unique<LibvirtHostRuntime>();
  rt->capacity = host_capacity(cfg);
  const std::string uri = cfg.get_string("agent.libvirt_uri");

  ProbeOptions popts;
  std::unique_ptr<VmSource> vms;
  if (!ctx.options.static_vms.empty()) {
    MORPH_TRY_ASSIGN(StaticVmSource s, StaticVmSource::parse(ctx.options.static_vms, popts.cgroup2_root));
    vms = std::make_unique<StaticVmSource>(std::move(s));
  } else {
    InventoryOptions io;
    io.uri = uri;
    auto inv = Inventory::open(io);
    if (!inv) return std::move(inv).error().with_context("agent.libvirt_uri " + uri);
    rt->inventory = std::shared_ptr<Inventory>(std::move(inv).value());
    vms = std::make_unique<InventoryVmSource>(rt->inventory);
  }
  // The one BPF object of this agent: the probes and the policer share it. A policer that cannot load
  // leaves the KPI programs loaded (BpfRuntime::load).
  BpfRuntimeOptions bopts;
  bopts.kpi_programs.force_raw_tp = ctx.options.raw_tp;
  bopts.pin_dir = cfg.get_string(config::agent_keys::bpf_pin_dir);
  auto bpf = BpfRuntime::load(bopts);
  if (!bpf) return std::move(bpf).error().with_context("loading the BPF programs");
  auto probes = KpiProbes::create(*bpf, popts);
  if (!probes) return std::move(probes).error();
  rt->source = std::make_shared<ProbeKpiSource>(std::move(probes).value(), std::move(vms), ctx.metrics);
  MORPH_TRY(rt->source->start());

  // Shifting: without the policer only network shifts are refused; without libvirt all are.
  if (auto p = shifter::NetPolicer::open(*bpf); p) {
    rt->policer = std::move(p).value();
  } else {
    spdlog::warn("network policer unavailable, net_* shifts will be refused: {}", p.error().what());
  }
  auto mech = shifter::LibvirtMechanisms::connect({.uri = uri}, rt->policer.get());
  if (!mech) {
    spdlog::warn("shifting engine unavailable, every shift will be refused: {}", mech.error().what());
    return std::unique_ptr<HostRuntime>(std::move(rt));
  }
  rt->mechanisms = std::move(mech).value();
  shifter::ShiftEngine::Options eo;
  eo.on_expiry =
      cfg.get_string("lease.on_expiry") == "hold" ? shifter::ExpiryPolicy::hold : shifter::ExpiryPolicy::revert;
  const std::string state_file = cfg.get_string("lease.state_file");
  if (!state_file.empty()) eo.store = std::make_shared<LeaseStateFile>(state_file);
  rt->engine = std::make_shared<shifter::ShiftEngine>(
      *rt->mechanisms, [] { return shifter::WallClock::now(); }, eo);
  // Leases that ran out while the agent was down are ended now; the events are reported once connected.
  if (auto ev = rt->engine->reconcile(); !ev) {
    spdlog::warn("lease.state_file {}: {}", state_file, ev.error().what());
  } else if (!ev->empty()) {
    spdlog::info("{} lease(s) ran out while the agent was down; applied lease.on_expiry={}", ev->size(),
                 cfg.get_string("lease.on_expiry"));
  }
  EngineShiftHandler::Options ho;
  ho.default_lease = std::chrono::duration_cast<std::chrono::milliseconds>(cfg.get_duration("lease.default"));
  rt->handler = std::make_shared<EngineShiftHandler>(rt->engine, ho, ctx.metrics);
  return std::unique_ptr<HostRuntime>(std::move(rt));
}

}  // namespace morph::agent
