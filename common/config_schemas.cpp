#include "common/config_schemas.h"

#include <string>

#include "common/resource.h"

namespace morph::config {

namespace {

const std::vector<std::string> kLogLevels = {"trace", "debug", "info", "warn", "error", "critical", "off"};

void add_log_level(Schema& s) {
  s.add("log.level", Type::choice, "info",
        "Least severe level logged to stderr: error (act on it), warn (degraded, continuing), info "
        "(lifecycle and state changes), debug (per tick and per message).")
      .choices(kLogLevels);
}

Schema make_agent_schema() {
  Schema s("morph-agent");
  s.add("agent.host_id", Type::string, "",
        "This host's id in the fleet: its name in the controller's allow-list and its KPI topic "
        "kpi.<host_id>. Empty: the system's hostname.");
  s.add("agent.libvirt_uri", Type::string, "qemu:///system",
        "libvirt connection of the VMs this agent measures and shifts.");
  s.add("agent.interval", Type::duration, "1s",
        "How often KPIs are read from the BPF maps and one KpiReport is published. Intervals end on wall-clock "
        "multiples of it, where the controller's ticks fall too (keep hosts' clocks in sync with NTP).")
      .min("100ms")
      .max("1m");
  s.add("agent.bpf_pin_dir", Type::path, "/sys/fs/bpf/morph",
        "bpffs directory where the agent pins the BPF maps that must outlive it (the network policer's limits "
        "and counters): limits stay in force without an agent and the next one reuses the maps and reads them "
        "back. Two agents on one kernel need two directories. Empty: nothing pinned, so a restarted agent "
        "cannot read back the network limits in force.");
  s.add("endpoints.ingest", Type::endpoint, "tcp://127.0.0.1:7710",
        "The controller's ingest endpoint, where KPI reports go (PUB, connects).");
  s.add("endpoints.control", Type::endpoint, "tcp://127.0.0.1:7711",
        "The controller's control endpoint: hello, heartbeats, shift commands and results (DEALER, connects).");
  s.add("security.keys_dir", Type::path, "/etc/morph/keys",
        "CURVE keys (morphctl keys gen): this host's <host_id>.key and the controller's controller.pub. "
        "Needed when an endpoint is tcp://.");
  s.add("lease.default", Type::duration, "5s",
        "Lease of a shift whose command names none: without renewal the VM returns to its baseline when "
        "it runs out.")
      .min("100ms")
      .max("1h");
  s.add("lease.on_expiry", Type::choice, "revert",
        "What happens to a shifted VM when its lease runs out or the controller is lost: revert to the "
        "baseline, or hold the values in force.")
      .choices({"revert", "hold"});
  s.add("lease.state_file", Type::path, "/var/lib/morph/agent-leases.json",
        "Baselines and leases are kept here so they survive an agent restart. Empty: not kept.");
  s.add("metrics.listen", Type::listen, "127.0.0.1:9470",
        "HTTP address serving /metrics (Prometheus) and /healthz. Empty: no HTTP server.");
  // CPU and memory capacity are read from the host; disk and network cannot be, so they are declared.
  s.add("capacity.disk_iops", Type::integer, "20000",
        "Disk operations per second this host offers its VMs in total (announced in HostHello). 0: not offered.")
      .min("0");
  s.add("capacity.disk_bps", Type::bytes, "1GiB",
        "Disk bytes per second this host offers its VMs in total (announced in HostHello). 0: not offered.");
  s.add("capacity.net_out_kbps", Type::integer, "10000000",
        "Guest-transmit bandwidth in kbit/s this host offers its VMs in total (the uplink's speed). 0: not offered.")
      .min("0");
  s.add("capacity.net_in_kbps", Type::integer, "10000000",
        "Guest-receive bandwidth in kbit/s this host offers its VMs in total. 0: not offered.")
      .min("0");
  add_log_level(s);
  return s;
}

Schema make_controller_schema() {
  Schema s("morph-controller");
  s.add("controller.tick", Type::duration, "1s", "Length of a market tick: bids are cleared and charged once per tick.")
      .min("100ms")
      .max("1m");
  s.add("controller.tick_offset", Type::duration, "50ms",
        "Ticks fall this long after each wall-clock multiple of controller.tick, where agents end their KPI "
        "intervals: time for the reports of the interval just ended to arrive, so a rescue they raise is "
        "cleared at once. Shorter than the tick.")
      .min("0ms")
      .max("1m");
  s.add("endpoints.ingest", Type::endpoint, "tcp://127.0.0.1:7710",
        "Where agents' KPI reports arrive (XSUB, binds). tcp://0.0.0.0:PORT accepts remote hosts.");
  s.add("endpoints.control", Type::endpoint, "tcp://127.0.0.1:7711",
        "Where agents say hello and heartbeat and take shift commands (ROUTER, binds).");
  s.add("endpoints.api", Type::endpoint, "tcp://127.0.0.1:7712",
        "Requests from morphctl and integrations: bids, accounts, queries, snapshots (ROUTER, binds).");
  s.add("endpoints.events", Type::endpoint, "tcp://127.0.0.1:7713",
        "Stream of KPIs, prices, allocations, shifts and bid outcomes (XPUB, binds).");
  s.add("ledger.path", Type::path, "/var/lib/morph/ledger.db",
        "SQLite ledger (WAL mode): one transaction per tick; its directory must exist.");
  s.add("ledger.retention.keep", Type::duration, "0s",
        "How much per-tick history (charges, failures, prices, tick rows) the ledger keeps: older "
        "ticks' rows are summed per account, then moved to ledger.retention.archive or deleted. Balances, "
        "credits, bids and the audit are unaffected; `ledger show` no longer lists archived entries. 0s: keep "
        "everything.")
      .min("0s");
  s.add("ledger.retention.archive", Type::path, "",
        "SQLite file that archived per-tick rows are moved to (created if missing; ids kept). Empty: they are "
        "deleted once summed.");
  s.add("ledger.retention.batch_ticks", Type::integer, "10",
        "At most this many ticks are archived after each tick, so archiving a long backlog never stalls a tick.")
      .min("1")
      .max("10000");
  // Defaults (docs/market.md "Reserve prices"): the smallest non-zero price, 1 µcr per unit-second, where
  // that is a sensible price (a core-hour, a GiB-hour, 1,000 IOPS-hours each cost about 3.6 credits);
  // 0 where the unit is too fine for an integer price (1 µcr per byte/s or kbit/s would make 100 Mbit/s
  // cost as much as 100 cores); a fast-tier slot (a whole disk) at a core's price.
  // In the order of kMarketResources.
  const char* defaults[] = {"1", "1", "1", "0", "0", "0", "1000"};
  static_assert(std::size(defaults) == kMarketResourceCount);
  for (size_t i = 0; i < kMarketResourceCount; ++i) {
    const Resource res = kMarketResources[i];
    std::string r(resource_name(res));
    s.add("market.reserve." + r, Type::integer, defaults[i],
          std::string("Reserve price of ") + r + " in µcredits per " + resource_unit(res) +
              " per second: bids below it are refused and it is the price when no bid loses (what an uncontested "
              "winner pays).")
        .min("0")
        .max("1099511627776");  // 2^40, the market's price bound (controller/market/money.h kMaxPrice)
  }
  s.add("market.min_hold_ticks", Type::integer, "5",
        "Ticks an allocation is held against bids of the same or a lower tier.")
      .min("0")
      .max("86400");
  s.add("market.speculative_notice_ticks", Type::integer, "3",
        "Ticks of notice before speculative capacity is revoked (0: revoked at once).")
      .min("0")
      .max("86400");
  s.add("market.hysteresis_pct", Type::integer, "5",
        "A challenger must outbid an incumbent by this many percent to displace it.")
      .min("0")
      .max("100");
  // The CPU demand forecaster behind predictive bids and quotes (controller/predict/).
  const char* forecast_step =
      "Step of the CPU demand forecaster: each VM's mean demand over a step is one observation, and forecasts "
      "reach 12 steps ahead (predictive bids' --horizon, quote's hour). 5m is the step its prior was fitted at.";
  s.add("forecast.step", Type::duration, "5m", forecast_step).min("1s").max("1h");
  const char* min_steps = "Steps of a VM's history before its forecast is bid on (predictive bids) or quoted.";
  s.add("forecast.min_steps", Type::integer, "12", min_steps).min("1").max("288");
  s.add("security.keys_dir", Type::path, "/etc/morph/keys",
        "CURVE keys (morphctl keys gen): the controller's controller.key. Needed when an endpoint is tcp://.");
  s.add("security.allow_list", Type::path, "/etc/morph/allow-list",
        "Public keys allowed to connect, each with its role (agent, tenant, admin); see docs/security.md.");
  s.add("metrics.listen", Type::listen, "127.0.0.1:9471",
        "HTTP address serving /metrics (Prometheus) and /healthz. Empty: no HTTP server.");
  s.add("dashboard.listen", Type::listen, "127.0.0.1:9472",
        "HTTP address where the controller serves the operator dashboard (read-only, no authentication: it shows "
        "every host, VM, account, bid and price, so keep it on loopback). Empty: no dashboard.");
  add_log_level(s);
  return s;
}

}  // namespace

const Schema& agent_schema() {
  static const Schema s = make_agent_schema();
  return s;
}

const Schema& controller_schema() {
  static const Schema s = make_controller_schema();
  return s;
}

}  // namespace morph::config
