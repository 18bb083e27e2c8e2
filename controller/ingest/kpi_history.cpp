#include "controller/ingest/kpi_history.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <limits>

#include "common/kpi/derived.h"

namespace morph::controller {

namespace {
// Rates are rounded to the nearest unit and saturate: a sample is a measurement, not an account.
uint32_t sat(double v) {
  if (!(v > 0)) return 0;
  return v >= static_cast<double>(std::numeric_limits<uint32_t>::max()) ? std::numeric_limits<uint32_t>::max()
                                                                        : static_cast<uint32_t>(v + 0.5);
}
uint32_t sat(uint64_t v) {
  return static_cast<uint32_t>(std::min<uint64_t>(v, std::numeric_limits<uint32_t>::max()));
}
}  // namespace

void KpiHistory::Ring::push(const KpiSample& s, size_t capacity) {
  if (capacity == 0) return;
  if (buf_.size() < capacity) {
    buf_.push_back(s);
    return;
  }
  buf_[head_] = s;
  head_ = head_ + 1 == capacity ? 0 : head_ + 1;
}

void KpiHistory::Ring::copy_last(size_t n, std::vector<KpiSample>& out) const {
  n = std::min(n, buf_.size());
  out.reserve(out.size() + n);
  // Oldest at head_ (0 until the ring is full); the last n start n before the newest.
  const size_t size = buf_.size();
  for (size_t i = size - n; i < size; ++i) out.push_back(buf_[(head_ + i) % size]);
}

KpiHistory::KpiHistory(Options options)
    : opt_(options), coarse_ns_(static_cast<uint64_t>(std::max<int64_t>(1, options.coarse_window.count()))) {}

void KpiHistory::Totals::add(const Totals& t) {
  auto sum = [](uint64_t& a, uint64_t b) { a = a > UINT64_MAX - b ? UINT64_MAX : a + b; };
  sum(span_ns, t.span_ns);
  sum(run_ns, t.run_ns);
  sum(wait_ns, t.wait_ns);
  sum(read_bytes, t.read_bytes);
  sum(write_bytes, t.write_bytes);
  sum(ops, t.ops);
  sum(rx_bytes, t.rx_bytes);
  sum(tx_bytes, t.tx_bytes);
}

KpiSample KpiHistory::sample_of(const Totals& t, uint64_t end_ns) {
  KpiSample s;
  s.end_ns = end_ns;
  s.span_ms = sat(t.span_ns / 1'000'000);
  s.cpu_run_mc = sat(kpi::cpu_share(t.run_ns, t.span_ns) * 1000);
  s.cpu_wait_mc = sat(kpi::cpu_share(t.wait_ns, t.span_ns) * 1000);
  s.cpu_peak_demand_mc = s.cpu_demand_mc();
  s.disk_read_kibps = sat(kpi::per_second(t.read_bytes, t.span_ns) / 1024);
  s.disk_write_kibps = sat(kpi::per_second(t.write_bytes, t.span_ns) / 1024);
  s.disk_iops = sat(kpi::per_second(t.ops, t.span_ns));
  s.net_rx_kibps = sat(kpi::per_second(t.rx_bytes, t.span_ns) / 1024);
  s.net_tx_kibps = sat(kpi::per_second(t.tx_bytes, t.span_ns) / 1024);
  return s;
}

void KpiHistory::close_window(Vm& vm) const {
  const Window& w = vm.open;
  if (w.reports == 0 || w.totals.span_ns == 0) return;
  KpiSample s = sample_of(w.totals, (w.index + 1) * coarse_ns_);
  s.cpu_peak_demand_mc = w.peak_mc;
  s.mem_rss_mib = sat(w.rss_mib_sum / w.reports);
  vm.coarse.push(s, opt_.coarse_windows);
}

void KpiHistory::forget_silent(uint64_t now_ns) {
  const uint64_t span = coarse_ns_ * std::max<size_t>(1, opt_.coarse_windows);
  std::erase_if(vms_, [&](const auto& kv) { return kv.second.last_end_ns + span < now_ns; });
}

void KpiHistory::on_kpi_report(const v1::KpiReport& report, uint64_t received_ns) {
  if (!report.vms()) return;
  const uint64_t end_ns = report.timestamp_ns() ? report.timestamp_ns() : received_ns;
  const uint64_t index = end_ns / coarse_ns_;
  std::lock_guard lk(mu_);
  if (index > sweep_index_) {
    if (sweep_index_ != 0) forget_silent(end_ns);
    sweep_index_ = index;
  }
  for (const auto* k : *report.vms()) {
    const uint64_t interval = k->interval_ns() ? k->interval_ns() : report.interval_ns();
    if (!k->uuid() || interval == 0) continue;
    const std::string_view uuid = k->uuid()->string_view();
    auto it = vms_.find(uuid);
    if (it == vms_.end()) {
      if (vms_.size() >= opt_.max_vms) {
        if (!full_logged_)
          spdlog::warn("kpi history: {} VMs kept, the most it keeps; vm={} and other new VMs are not", vms_.size(),
                       uuid);
        full_logged_ = true;
        continue;
      }
      it = vms_.emplace(std::string(uuid), Vm{}).first;
    }
    Vm& vm = it->second;
    const Totals t{interval,
                   k->cpu_run_ns(),
                   k->cpu_wait_ns(),
                   k->blk_read_bytes(),
                   k->blk_write_bytes(),
                   k->blk_read_ops() + k->blk_write_ops(),  // as kpi::blk_ops: each request once
                   k->net_rx_bytes(),
                   k->net_tx_bytes()};
    KpiSample s = sample_of(t, end_ns);
    s.mem_rss_mib = sat(k->mem_rss_bytes() >> 20);
    vm.fine.push(s, opt_.fine_samples);
    vm.last_end_ns = std::max(vm.last_end_ns, end_ns);
    // Downsampling: the open window takes the interval; a report past it closes it first. One from before
    // it (a clock stepped back) joins the open window rather than reopening a closed one.
    Window& w = vm.open;
    if (w.reports > 0 && index > w.index) {
      close_window(vm);
      w = Window{};
    }
    if (w.reports == 0) w.index = index;
    w.totals.add(t);
    w.rss_mib_sum += s.mem_rss_mib;
    w.peak_mc = std::max(w.peak_mc, s.cpu_peak_demand_mc);
    ++w.reports;
  }
}

std::optional<KpiHistory::VmSeries> KpiHistory::series(std::string_view vm) const {
  std::lock_guard lk(mu_);
  auto it = vms_.find(vm);
  if (it == vms_.end()) return std::nullopt;
  VmSeries out;
  it->second.fine.copy_last(it->second.fine.size(), out.fine);
  it->second.coarse.copy_last(it->second.coarse.size(), out.coarse);
  return out;
}

std::vector<KpiSample> KpiHistory::recent(std::string_view vm, size_t n) const {
  std::vector<KpiSample> out;
  std::lock_guard lk(mu_);
  if (auto it = vms_.find(vm); it != vms_.end()) it->second.fine.copy_last(n, out);
  return out;
}

std::optional<double> KpiHistory::mean_demand(std::string_view vm, uint64_t from_ns, uint64_t to_ns) const {
  std::lock_guard lk(mu_);
  auto it = vms_.find(vm);
  if (it == vms_.end() || to_ns <= from_ns) return std::nullopt;
  double weighted = 0, span = 0;
  auto add = [&](const KpiSample& s) {
    weighted += static_cast<double>(s.cpu_demand_mc()) * s.span_ms;
    span += s.span_ms;
  };
  bool reached = !it->second.fine.full(opt_.fine_samples);  // nothing dropped yet: the ring is the whole past
  it->second.fine.visit_newest_first([&](const KpiSample& s) {
    if (s.end_ns < from_ns) {
      reached = true;
      return false;
    }
    if (s.end_ns < to_ns) add(s);
    return true;
  });
  if (!reached) {
    // The span reaches past the fine samples: the closed windows wholly inside it instead (a window's
    // sample ends at its end and holds the intervals that ended in [end - coarse_window, end)).
    weighted = span = 0;
    it->second.coarse.visit_newest_first([&](const KpiSample& s) {
      if (s.end_ns < from_ns + coarse_ns_) return false;
      if (s.end_ns <= to_ns) add(s);
      return true;
    });
  }
  if (span <= 0) return std::nullopt;
  return weighted / span;
}

size_t KpiHistory::vm_count() const {
  std::lock_guard lk(mu_);
  return vms_.size();
}

}  // namespace morph::controller
