#include "hostagent/probes/kpi_loop.h"

#include <spdlog/spdlog.h>

#include <condition_variable>
#include <ctime>
#include <memory>
#include <mutex>

namespace morph::agent {

namespace {

uint64_t realtime_ns() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000ull + uint64_t(ts.tv_nsec);
}

// Changes pushed by the source's thread, applied by the KPI loop (KpiProbes is single-threaded). Shared so
// that a callback still in flight after watch(nullptr) finds it alive.
struct ChangeQueue {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<VmChange> changes;
};

// With events, list() is only a safety net (and the answer to resync): once per this many intervals.
constexpr uint64_t kReconcileEveryIntervals = 30;
}  // namespace

Status run_kpi_loop(KpiProbes& probes, VmSource& source, const KpiLoopOptions& options, const KpiSink& sink,
                    const volatile bool* stop) {
  auto queue = std::make_shared<ChangeQueue>();
  const bool events = source.watch([queue](VmChange c) {
    {
      std::lock_guard lock(queue->mu);
      queue->changes.push_back(std::move(c));
    }
    queue->cv.notify_one();
  });
  struct Unwatch {
    VmSource& s;
    ~Unwatch() { s.watch(nullptr); }
  } unwatch{source};

  auto reconcile = [&]() -> Status {
    auto vms = source.list();
    if (!vms) {
      spdlog::warn("listing VMs: {}", vms.error().what());  // keep the registered set until it answers
      return {};
    }
    (void)probes.sync(*vms);  // per-VM failures are logged by sync
    return probes.refresh_cgroups();
  };
  // Applies queued changes; true when one asked for a full reconcile.
  auto apply_changes = [&]() {
    std::vector<VmChange> changes;
    {
      std::lock_guard lock(queue->mu);
      changes.swap(queue->changes);
    }
    bool resync = false;
    for (VmChange& c : changes) {
      if (c.kind == VmChange::Kind::resync) {
        resync = true;
      } else if (c.kind == VmChange::Kind::remove) {
        if (auto st = probes.remove_vm(c.vm.uuid); !st && st.error().code() != Errc::not_found)
          spdlog::warn("{}", st.error().what());
      } else if (auto st = probes.update_vm(c.vm); !st) {
        spdlog::warn("{}", st.error().what());
      }
    }
    return resync;
  };
  if (auto st = reconcile(); !st) spdlog::warn("{}", st.error().what());
  if (probes.vm_count() == 0) spdlog::warn("no VMs to measure yet");
  auto next = std::chrono::steady_clock::now();
  for (uint64_t n = 0; options.count == 0 || n < options.count; n++) {
    next += options.interval;
    // Sleep until the interval ends, registering and unregistering VMs as their events arrive: a VM
    // started now is in this interval's output (its first interval starts at registration).
    for (;;) {
      {
        std::unique_lock lock(queue->mu);
        queue->cv.wait_until(lock, next, [&] { return !queue->changes.empty() || (stop && *stop); });
      }
      if (apply_changes()) {
        if (auto st = reconcile(); !st) spdlog::warn("{}", st.error().what());
      }
      if (std::chrono::steady_clock::now() >= next || (stop && *stop)) break;
    }
    if (stop && *stop) break;
    MORPH_TRY_ASSIGN(auto kpis, probes.read());
    const uint64_t ts = realtime_ns();
    for (kpi::VmKpis& k : kpis)
      if (auto kib = source.balloon_kib(k.uuid)) k.mem_balloon_kib = *kib;
    sink(kpis, ts);
    // Without events, new/gone VMs join or leave at interval boundaries; with them, list() is a safety
    // net. New cgroups of registered VMs (hot-plugged vCPUs) have no event: re-scan every interval.
    if (!events || (n + 1) % kReconcileEveryIntervals == 0) {
      if (auto st = reconcile(); !st) spdlog::warn("{}", st.error().what());
    } else if (auto st = probes.refresh_cgroups(); !st) {
      spdlog::warn("{}", st.error().what());
    }
  }
  return {};
}

}  // namespace morph::agent
