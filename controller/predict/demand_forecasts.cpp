#include "controller/predict/demand_forecasts.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace morph::controller {

namespace {
forecast::QuantileForecasterConfig model_config(const DemandForecastsConfig& c) {
  forecast::QuantileForecasterConfig m;
  m.max_horizon = std::max(1, c.max_horizon);
  return m;
}
// A VM silent this many steps is forgotten and its slot reused: a day at the default step.
constexpr uint64_t kForgetSteps = 288;
}  // namespace

DemandForecasts::DemandForecasts(std::shared_ptr<const KpiHistory> history, DemandForecastsConfig config)
    : cfg_(config),
      step_ns_(static_cast<uint64_t>(std::max<int64_t>(1, config.step.count()))),
      history_(std::move(history)),
      model_(model_config(config)) {}

void DemandForecasts::close_step(const std::string& id, Vm& vm, uint64_t next_step) {
  const uint64_t from = vm.open_step * step_ns_, to = from + step_ns_;
  if (auto demand = history_->mean_demand(id, from, to)) {
    model_.observe(vm.slot, *demand);
    VmDemandForecast& f = vm.latest;
    ++f.steps;
    f.as_of_ns = to;
    f.last_mc = *demand;
    f.ahead.resize(static_cast<size_t>(model_.max_horizon()));
    for (int h = 1; h <= model_.max_horizon(); ++h) f.ahead[static_cast<size_t>(h - 1)] = model_.forecast(vm.slot, h);
  }
  // Silent for longer than the longest horizon: the level it had says little now, so it starts over.
  if (next_step > vm.open_step + 1 + static_cast<uint64_t>(model_.max_horizon())) {
    model_.reset(vm.slot);
    vm.latest = {};
  }
  vm.open_step = next_step;
}

void DemandForecasts::forget_silent(uint64_t step) {
  std::erase_if(vms_, [&](const auto& kv) {
    if (kv.second.open_step + kForgetSteps >= step) return false;
    model_.reset(kv.second.slot);
    free_slots_.push_back(kv.second.slot);
    return true;
  });
}

void DemandForecasts::on_kpi_report(const v1::KpiReport& report, uint64_t received_ns) {
  if (!report.vms()) return;
  // The history's timestamp, so a step here is the same span of the same samples there.
  const uint64_t end_ns = report.timestamp_ns() ? report.timestamp_ns() : received_ns;
  const uint64_t step = end_ns / step_ns_;
  std::lock_guard lk(mu_);
  if (step > sweep_step_ + kForgetSteps) {
    forget_silent(step);
    sweep_step_ = step;
  }
  for (const auto* k : *report.vms()) {
    if (!k->uuid()) continue;
    const std::string_view uuid = k->uuid()->string_view();
    auto it = vms_.find(uuid);
    if (it == vms_.end()) {
      if (vms_.size() >= cfg_.max_vms) {
        if (!full_logged_) spdlog::warn("forecasts: {} VMs kept, the most it keeps; vm={} is not", vms_.size(), uuid);
        full_logged_ = true;
        continue;
      }
      Vm vm;
      if (free_slots_.empty()) {
        vm.slot = vms_.size();
        model_.resize(vm.slot + 1);
      } else {
        vm.slot = free_slots_.back();
        free_slots_.pop_back();
      }
      vm.open_step = step;
      vms_.emplace(std::string(uuid), std::move(vm));
      continue;
    }
    // A report from before the open step (a clock stepped back) is in the history but closes nothing.
    if (step > it->second.open_step) close_step(it->first, it->second, step);
  }
}

std::optional<VmDemandForecast> DemandForecasts::forecast(std::string_view vm) const {
  std::lock_guard lk(mu_);
  auto it = vms_.find(vm);
  if (it == vms_.end() || it->second.latest.steps == 0) return std::nullopt;
  return it->second.latest;
}

size_t DemandForecasts::vm_count() const {
  std::lock_guard lk(mu_);
  return vms_.size();
}

}  // namespace morph::controller
