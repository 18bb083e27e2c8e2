#pragma once
// RescuePolicy: turns a VM's KPIs into SLA-tier rescue bids on its owner's behalf. Per VM it tracks how
// many consecutive intervals each SLA signal (run-queue wait share, block p99 latency, drops) has been
// over its threshold; after `breach_intervals` it proposes a rescue bid for the resource that relieves it
// — only when the owner's policy allows rescue and the funds and hourly budget cover it. A rescue is
// retired only after `recover_intervals` consecutive healthy intervals (hysteresis), so it does not flap.
//
// It decides; it never submits, never touches the ledger, and never reads a clock: the caller feeds
// samples in order and carries out the actions (Exchange::submit / cancel).

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/error.h"
#include "common/kpi/vm_kpis.h"
#include "controller/market/types.h"

namespace morph::rescue {

using market::Micros;

// What a tenant sets for one VM.
struct SlaPolicy {
  std::string vm;
  std::string account;
  bool rescue = true;
  // Thresholds. 0 disables a signal.
  uint32_t runq_wait_permille = 200;  // kpi::runq_wait_permille: cpu_wait / (cpu_run + cpu_wait)
  uint64_t blk_p99_us = 20'000;       // block request latency, 99th percentile (kpi::hist_percentile_us)
  uint64_t drops_per_s = 50;          // packets dropped per second (either direction; the policer's too)
  uint32_t breach_intervals = 3;      // consecutive intervals over threshold before a rescue
  uint32_t recover_intervals = 5;     // consecutive healthy intervals (each signal under kRecoverPercent of
                                      // its threshold) before the rescue is retired
  // What a rescue asks for.
  int64_t cpu_step = 500;  // millicores
  int64_t disk_iops_step = 200;
  int64_t net_kbps_step = 10'000;
  Micros max_price = 0;           // per unit per second
  Micros budget_per_hour = 0;     // cap on what rescue bids may cost per hour at max_price
  uint32_t funds_horizon_s = 60;  // the balance must cover the bid at max_price this long
  // Predictive bids (controller/predict/): a bid for the forecast demand above the baseline, kept in place
  // `predictive_horizon_s` ahead, at the forecast's `predictive_quantile_permille` quantile; within max_price
  // and budget_per_hour.
  bool predictive = false;
  uint32_t predictive_horizon_s = 300;
  uint32_t predictive_quantile_permille = 900;
};

// Bounds of a policy's money fields and steps (set_policy refuses others, naming the field): a rescue bid's
// step x max_price x 3600 stays far inside int64 (docs/market.md, "Money bounds").
inline constexpr Micros kMaxPolicyPrice = Micros{1} << 28;
inline constexpr int64_t kMaxStep = int64_t{1} << 20;

// A rescued VM is healthy only under this share of each threshold (level hysteresis; docs/market.md).
inline constexpr uint64_t kRecoverPercent = 80;

enum class Signal : uint8_t { runq_wait, blk_latency, tx_drops, rx_drops };
inline constexpr int kSignalCount = 4;
const char* signal_name(Signal s) noexcept;
std::optional<Signal> parse_signal(std::string_view name) noexcept;
// The resource a signal's rescue buys.
Resource relief_for(Signal s) noexcept;

struct RescueAction {
  enum class Kind : uint8_t { raise, retire, refused };
  Kind kind = Kind::raise;
  Signal signal = Signal::runq_wait;
  std::string vm;
  market::BidRequest bid;  // raise: what to submit (tier sla)
  std::string why;         // operator-readable: the measurement, or why it was refused
};

class RescueEvaluator {
 public:
  Status set_policy(const SlaPolicy& policy);
  void remove_policy(const std::string& vm);

  // One interval of one VM (matched to a policy by uuid, else name). `balance` is the owner's balance
  // now. The hourly budget counts this VM's rescues in force at max_price.
  std::vector<RescueAction> observe(const kpi::VmKpis& kpis, Micros balance);

  // After a restart: a rescue raised before it is still in force for (vm, signal) with this quantity, so
  // it counts against the budget and is retired on recovery. The VM's policy must be set first.
  Status restore_rescue(const std::string& vm, Signal s, int64_t quantity);

  // The caller could not place the rescue just raised (e.g. the VM has no room left under its ceiling):
  // forget it and re-arm, so another full breach may raise it again.
  void abandon(const std::string& vm, Signal s);

  // Whether a rescue is in force for (vm, signal) — i.e. raised and not yet retired.
  bool active(const std::string& vm, Signal s) const;

 private:
  struct SignalState {
    uint32_t over = 0;     // consecutive intervals over threshold
    uint32_t healthy = 0;  // consecutive intervals under, while a rescue is active
    bool rescuing = false;
    int64_t quantity = 0;  // of the active rescue bid
  };
  struct VmState {
    SlaPolicy policy;
    std::array<SignalState, kSignalCount> signals{};
  };
  Micros hourly_cost(const VmState& st) const;
  std::unordered_map<std::string, VmState> vms_;  // by VmKpis::uuid or name, as the policy names it
};

}  // namespace morph::rescue
