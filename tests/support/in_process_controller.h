#pragma once
// For tests and benchmarks that run a real `morph-agent run` against a ControllerServer in their own
// process: the controller's ipc:// endpoints in a directory, the agent's command line for them, and a
// market seam that only records what the agent sends back (shift results with when they arrived, the KPIs
// of the VMs it watches). There is no market here: every api request is refused as unavailable.

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/kpi/vm_kpis.h"
#include "common/msg/shift.h"
#include "controller/api/controller_server.h"

namespace morph::test {

// ingest, control, api and events as ipc:// sockets in `dir` (the server creates it, mode 0700).
controller::ControllerEndpoints ipc_endpoints(const std::string& dir);

// `morph-agent run --host HOST --ingest … --control …` for these endpoints, then `more`.
std::vector<std::string> agent_run_argv(const std::string& host, const controller::ControllerEndpoints& e,
                                        const std::vector<std::string>& more);

using Clock = std::chrono::steady_clock;
using ReceivedResult = std::pair<msg::ShiftOutcome, Clock::time_point>;
// One VM's entry of a KPI report: the reporting host, when it arrived.
struct ReceivedKpi {
  std::string host, uuid;
  Clock::time_point at;
  kpi::VmKpis kpis;
};

class ShiftRecorder final : public controller::MarketApi, public controller::KpiObserver {
 public:
  // KPIs are kept for the VMs with these UUIDs (none: no KPIs are kept), or of every VM with `all_vms`.
  explicit ShiftRecorder(std::vector<std::string> watched = {}, bool all_vms = false)
      : watched_(std::move(watched)), all_vms_(all_vms) {}

  Result<controller::ReplyBody> handle(const controller::Caller&, const v1::ApiRequest&,
                                       flatbuffers::FlatBufferBuilder&) override;
  void on_shift_result(const std::string& host, const msg::ShiftOutcome& r) override;
  void on_kpi_report(const v1::KpiReport& report, uint64_t received_ns) override;

  // The first result for command `id` with `reverted`, received at or after `since`.
  std::optional<ReceivedResult> result(uint64_t id, bool reverted, Clock::time_point since = {}) const;
  // The same, waiting up to `timeout` for it to arrive.
  std::optional<ReceivedResult> wait_result(uint64_t id, bool reverted, std::chrono::milliseconds timeout,
                                            Clock::time_point since = {}) const;
  // The watched VMs' KPIs in the order they arrived.
  std::vector<kpi::VmKpis> kpis() const;
  size_t kpi_count() const;
  // The same with their hosts and arrival, those arrived at or after `since`.
  std::vector<ReceivedKpi> received_kpis(Clock::time_point since = {}) const;

 private:
  std::optional<ReceivedResult> find(uint64_t id, bool reverted, Clock::time_point since) const;
  std::vector<std::string> watched_;
  bool all_vms_ = false;
  mutable std::mutex mu_;
  mutable std::condition_variable arrived_;
  std::vector<ReceivedResult> results_;
  std::vector<ReceivedKpi> kpis_;
};

}  // namespace morph::test
