#include "tests/support/in_process_controller.h"

#include <algorithm>

#include "common/msg/wire.h"
#include "tests/support/daemons.h"

namespace morph::test {

controller::ControllerEndpoints ipc_endpoints(const std::string& dir) {
  return {"ipc://" + dir + "/ingest", "ipc://" + dir + "/control", "ipc://" + dir + "/api", "ipc://" + dir + "/events"};
}

std::vector<std::string> agent_run_argv(const std::string& host, const controller::ControllerEndpoints& e,
                                        const std::vector<std::string>& more) {
  std::vector<std::string> argv = {
      program("hostagent/morph-agent"), "run", "--host", host, "--ingest", e.ingest, "--control", e.control};
  argv.insert(argv.end(), more.begin(), more.end());
  return argv;
}

Result<controller::ReplyBody> ShiftRecorder::handle(const controller::Caller&, const v1::ApiRequest&,
                                                    flatbuffers::FlatBufferBuilder&) {
  return Error(Errc::unavailable, "no market in this test");
}

void ShiftRecorder::on_shift_result(const std::string&, const msg::ShiftOutcome& r) {
  {
    std::lock_guard lk(mu_);
    results_.push_back({r, Clock::now()});
  }
  arrived_.notify_all();
}

void ShiftRecorder::on_kpi_report(const v1::KpiReport& report, uint64_t) {
  if (!report.vms() || (watched_.empty() && !all_vms_)) return;
  const auto now = Clock::now();
  for (const v1::VmKpi* k : *report.vms())
    if (k->uuid() && (all_vms_ || std::find(watched_.begin(), watched_.end(), k->uuid()->str()) != watched_.end())) {
      std::lock_guard lk(mu_);
      kpis_.push_back({std::string(msg::sv(report.host())), k->uuid()->str(), now, msg::to_vm_kpis(*k)});
    }
}

std::optional<ReceivedResult> ShiftRecorder::find(uint64_t id, bool reverted, Clock::time_point since) const {
  for (const auto& r : results_)
    if (r.first.command_id == id && r.first.reverted == reverted && r.second >= since) return r;
  return std::nullopt;
}

std::optional<ReceivedResult> ShiftRecorder::result(uint64_t id, bool reverted, Clock::time_point since) const {
  std::lock_guard lk(mu_);
  return find(id, reverted, since);
}

std::optional<ReceivedResult> ShiftRecorder::wait_result(uint64_t id, bool reverted, std::chrono::milliseconds timeout,
                                                         Clock::time_point since) const {
  std::unique_lock lk(mu_);
  std::optional<ReceivedResult> r;
  arrived_.wait_for(lk, timeout, [&] { return (r = find(id, reverted, since)).has_value(); });
  return r;
}

std::vector<kpi::VmKpis> ShiftRecorder::kpis() const {
  std::lock_guard lk(mu_);
  std::vector<kpi::VmKpis> out;
  for (const auto& k : kpis_) out.push_back(k.kpis);
  return out;
}

std::vector<ReceivedKpi> ShiftRecorder::received_kpis(Clock::time_point since) const {
  std::lock_guard lk(mu_);
  std::vector<ReceivedKpi> out;
  for (const auto& k : kpis_)
    if (k.at >= since) out.push_back(k);
  return out;
}

size_t ShiftRecorder::kpi_count() const {
  std::lock_guard lk(mu_);
  return kpis_.size();
}

}  // namespace morph::test
