#pragma once
// KpiHistory: a bounded per-VM history of KPIs, for the consumers that look back (a demand forecaster
// reads CPU demand = on-CPU time + run-queue wait per interval in millicores; the placement planner each
// VM's usage). Per VM it keeps the recent intervals at full resolution (the last `fine_samples` reports:
// 10 min of 1 s intervals by default) and older time downsampled into fixed wall-clock windows (the last
// `coarse_windows` closed windows of `coarse_window`: 24 h of 1 min by default), so a VM's memory is bounded
// however long it runs: 48 bytes a sample, (600 + 1440) × 48 ≈ 96 KiB per VM at the defaults, reached only
// once a VM has reported for 24 h. A VM silent for a whole coarse span is forgotten; at most `max_vms` VMs
// are kept (a new one beyond that is not, and is logged once).
//
// It is a KpiObserver (controller/ingest/kpi_observer.h), registered with the others in
// controller/runtime/. Each VM entry of a report costs O(1) amortised: a hash lookup, one ring write, one
// running sum; once per coarse window a pass over the VMs forgets the silent ones. Nothing runs per tick,
// and nothing grows with the history's length. Readers on other threads copy what they read under its
// lock. It decides nothing and never talks to sockets.

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "controller/ingest/kpi_observer.h"

namespace morph::controller {

// One interval as reported, or the mean over a downsampled window. Rates are per second of the span.
struct KpiSample {
  uint64_t end_ns = 0;              // wall clock: the interval's end (the agent's), or the window's end
  uint32_t span_ms = 0;             // measured time covered (a window's: the sum of its intervals)
  uint32_t cpu_run_mc = 0;          // on-CPU time, millicores
  uint32_t cpu_wait_mc = 0;         // run-queue wait, millicores
  uint32_t cpu_peak_demand_mc = 0;  // the highest demand (run + wait) of one interval in the span
  uint32_t disk_read_kibps = 0, disk_write_kibps = 0;
  uint32_t disk_iops = 0;  // reads + writes
  uint32_t net_rx_kibps = 0, net_tx_kibps = 0;
  uint32_t mem_rss_mib = 0;  // gauge: the mean over the span's reports

  // CPU demand: what the VM ran plus what it waited to run, millicores.
  uint32_t cpu_demand_mc() const { return cpu_run_mc + cpu_wait_mc; }
};

class KpiHistory final : public KpiObserver {
 public:
  struct Options {
    size_t fine_samples = 600;  // full-resolution intervals kept per VM
    std::chrono::nanoseconds coarse_window = std::chrono::minutes(1);
    size_t coarse_windows = 1440;  // closed windows kept per VM
    size_t max_vms = 100'000;
  };
  struct VmSeries {
    std::vector<KpiSample> fine;    // oldest first
    std::vector<KpiSample> coarse;  // closed windows, oldest first (the open one is not included)
  };

  KpiHistory() : KpiHistory(Options{}) {}
  explicit KpiHistory(Options options);

  // KpiObserver: each VM of a verified report, at the report's timestamp_ns (received_ns when it has none).
  void on_kpi_report(const v1::KpiReport& report, uint64_t received_ns) override;

  std::optional<VmSeries> series(std::string_view vm) const;
  // The last n full-resolution samples of a VM, oldest first (fewer when it has fewer).
  std::vector<KpiSample> recent(std::string_view vm, size_t n) const;
  // The mean CPU demand (run + wait) of a VM over the intervals that ended in [from_ns, to_ns), weighted by
  // their spans, in millicores; nullopt when none did. From the full-resolution samples when they reach back
  // to from_ns, else from the closed coarse windows within the span (a caller over a long span aligns it to
  // coarse_window). Costs at most one pass over the VM's rings, copies nothing.
  std::optional<double> mean_demand(std::string_view vm, uint64_t from_ns, uint64_t to_ns) const;
  size_t vm_count() const;
  const Options& options() const { return opt_; }

 private:
  // A fixed-capacity ring, grown on demand up to its capacity (a VM that reports briefly costs little).
  class Ring {
   public:
    void push(const KpiSample& s, size_t capacity);
    size_t size() const { return buf_.size(); }
    // The last n, oldest first.
    void copy_last(size_t n, std::vector<KpiSample>& out) const;
    // Calls f on the samples newest first until it returns false.
    template <class F>
    void visit_newest_first(F&& f) const {
      const size_t size = buf_.size();
      for (size_t i = size; i-- > 0;)
        if (!f(buf_[(head_ + i) % size])) return;
    }
    bool full(size_t capacity) const { return buf_.size() >= capacity; }

   private:
    std::vector<KpiSample> buf_;
    size_t head_ = 0;  // the oldest once full
  };
  // Counters over a span: one interval's as reported, or a window's summed (saturating).
  struct Totals {
    uint64_t span_ns = 0, run_ns = 0, wait_ns = 0, read_bytes = 0, write_bytes = 0, ops = 0, rx_bytes = 0, tx_bytes = 0;
    void add(const Totals& t);
  };
  // The coarse window being filled.
  struct Window {
    uint64_t index = 0;  // end_ns / coarse_window
    Totals totals;
    uint64_t rss_mib_sum = 0, reports = 0;
    uint32_t peak_mc = 0;
  };
  struct Vm {
    Ring fine, coarse;
    Window open;
    uint64_t last_end_ns = 0;
  };
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };

  // The one conversion of counters into a sample's millicores and rates (common/kpi/derived.h).
  static KpiSample sample_of(const Totals& t, uint64_t end_ns);
  void close_window(Vm& vm) const;
  void forget_silent(uint64_t now_ns);

  const Options opt_;
  const uint64_t coarse_ns_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Vm, Hash, std::equal_to<>> vms_;
  uint64_t sweep_index_ = 0;  // the coarse window of the last pass over silent VMs
  bool full_logged_ = false;
};

}  // namespace morph::controller
