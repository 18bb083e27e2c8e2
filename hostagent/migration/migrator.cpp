#include "hostagent/migration/migrator.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <thread>

namespace morph::agent::migration {

const char* presence_name(Presence p) {
  static constexpr const char* kNames[] = {"absent", "defined, not running", "running", "paused"};
  const auto i = static_cast<size_t>(p);
  return i < std::size(kNames) ? kNames[i] : "unknown";
}

namespace {

constexpr std::chrono::milliseconds kMaxDowntime{60'000};
constexpr uint32_t kMaxBandwidthMiBs = 1u << 20;  // 1 TiB/s
constexpr std::chrono::milliseconds kMinTimeout{1000};
constexpr std::chrono::hours kMaxTimeout{24};

uint64_t ms_between(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return static_cast<uint64_t>(
      std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::milliseconds>(b - a).count()));
}

}  // namespace

Migrator::Migrator(MigrationDriver& driver, Limits limits, Clock clock, Sleep sleep)
    : driver_(driver), limits_(limits), clock_(std::move(clock)), sleep_(std::move(sleep)) {
  if (!clock_) clock_ = [] { return std::chrono::steady_clock::now(); };
  if (!sleep_) sleep_ = [](std::chrono::milliseconds d) { std::this_thread::sleep_for(d); };
}

Status Migrator::validate(const MigrationOptions& o) {
  auto bad = [](std::string what) { return Error(Errc::invalid_argument, std::move(what)); };
  if (o.max_downtime < std::chrono::milliseconds(1) || o.max_downtime > kMaxDowntime)
    return bad(fmt::format("max downtime {} ms is outside 1 ms..60 s", o.max_downtime.count()));
  if (o.bandwidth_mib_s > kMaxBandwidthMiBs)
    return bad(fmt::format("bandwidth {} MiB/s is above 1 TiB/s", o.bandwidth_mib_s));
  if (o.timeout < kMinTimeout || o.timeout > kMaxTimeout)
    return bad(fmt::format("timeout {} ms is outside 1 s..24 h", o.timeout.count()));
  if (o.postcopy && o.tunnelled) return bad("post-copy does not work over a tunnelled stream");
  if (!o.transport_uri.empty()) {
    if (o.tunnelled) return bad("a transport URI and a tunnelled stream exclude each other");
    const auto& t = o.transport_uri;
    if (!(t.starts_with("tcp://") || t.starts_with("unix:///") || t.starts_with("rdma://")) ||
        t.find_first_of(" \t\"'\\") != std::string::npos)
      return bad(fmt::format("transport URI '{}' is not tcp://HOST[:PORT], unix:///PATH or rdma://HOST[:PORT]", t));
  }
  return {};
}

Status Migrator::reserve(const SourceVm& vm) {
  // libvirt's count covers migrations other clients started; ours are counted from reservation on, before
  // libvirt sees them, so two calls at once cannot both take the last slot.
  MORPH_TRY_ASSIGN(unsigned others, driver_.outbound_migrations());
  std::lock_guard lk(mu_);
  if (flights_.count(vm.uuid)) return Error(Errc::conflict, fmt::format("a migration of VM {} runs already", vm.name));
  const unsigned running = std::max<unsigned>(others, static_cast<unsigned>(flights_.size()));
  if (running >= limits_.max_outbound)
    return Error(Errc::unavailable,
                 fmt::format("this host already runs {} outbound migration(s), at most {} at once: try again later",
                             running, limits_.max_outbound));
  flights_[vm.uuid] = Flight{vm.name, false};
  return {};
}

void Migrator::release(const std::string& uuid) {
  std::lock_guard lk(mu_);
  flights_.erase(uuid);
}

bool Migrator::cancel_requested(const std::string& uuid) {
  std::lock_guard lk(mu_);
  auto it = flights_.find(uuid);
  return it != flights_.end() && it->second.cancel;
}

Status Migrator::cancel(const std::string& vm) {
  std::lock_guard lk(mu_);
  for (auto& [uuid, f] : flights_)
    if (uuid == vm || f.name == vm) {
      f.cancel = true;
      return {};
    }
  return Error(Errc::not_found, fmt::format("no migration of VM {} runs on this host", vm));
}

Status Migrator::check_destination(const SourceVm& vm, const std::string& uri) {
  auto here = driver_.host_uuid("");
  if (!here) return std::move(here).error().with_context("reading this host's UUID");
  auto there = driver_.host_uuid(uri);
  if (!there)
    return Error(Errc::unavailable, fmt::format("destination {} does not answer: {}", uri, there.error().what()));
  if (*here == *there)
    return Error(
        Errc::invalid_argument,
        fmt::format("destination {} is this host (host UUID {}): VM {} runs there already", uri, *here, vm.name));
  auto p = driver_.presence(uri, vm.uuid);
  if (!p) return Error(Errc::unavailable, fmt::format("destination {}: {}", uri, p.error().what()));
  if (*p != Presence::absent)
    return Error(Errc::conflict, fmt::format("destination {} already has a domain with VM {}'s UUID {} ({})", uri,
                                             vm.name, vm.uuid, presence_name(*p)));
  return {};
}

Result<MigrationReport> Migrator::migrate(const MigrationRequest& r, const ProgressCallback& progress) {
  MORPH_TRY(validate(r.options));
  if (r.destination_uri.empty()) return Error(Errc::invalid_argument, "no destination URI");
  auto found = driver_.find(r.vm);
  if (!found)
    return Error(found.error().code(), fmt::format("VM {} is not on this host: {}", r.vm, found.error().what()));
  const SourceVm vm = *found;
  if (vm.presence != Presence::running)
    return Error(Errc::conflict, fmt::format("VM {} is {} here: a live migration moves a running VM", vm.name,
                                             presence_name(vm.presence)));
  if (vm.migration_job) return Error(Errc::conflict, fmt::format("a migration of VM {} runs already", vm.name));
  if (!vm.other_job.empty())
    return Error(Errc::conflict, fmt::format("VM {} is busy with a libvirt {} job", vm.name, vm.other_job));
  MORPH_TRY(reserve(vm));
  struct Release {
    Migrator* m;
    std::string uuid;
    ~Release() { m->release(uuid); }
  } release{this, vm.uuid};
  MORPH_TRY(check_destination(vm, r.destination_uri));

  spdlog::info("migrating VM {} ({}) to {}", vm.name, vm.uuid, r.destination_uri);
  const auto t0 = clock_();
  if (auto st = driver_.begin(vm, r.destination_uri, r.options); !st)
    return after_failure(vm, r, std::move(st).error().with_context("starting the migration"));

  JobStats last;
  bool abort_sent = false, timed_out = false, cancelled = false, postcopy = false, cancel_ignored = false;
  MigrationEnd end;
  for (;;) {
    end = driver_.poll(vm.uuid);
    if (end.finished) break;
    if (!abort_sent) {
      if (cancel_requested(vm.uuid)) {
        if (!postcopy) {
          cancelled = true;
        } else if (!cancel_ignored) {
          cancel_ignored = true;
          spdlog::warn("VM {}: cancel ignored: the migration is in post-copy, the guest runs on the destination",
                       vm.name);
        }
      } else if (!postcopy && clock_() - t0 > r.options.timeout) {
        timed_out = true;
      }
      if (cancelled || timed_out) {
        // Once; later polls wait for the migration call to return with libvirt's "aborted".
        abort_sent = true;
        if (auto st = driver_.abort(vm.uuid); !st)
          spdlog::warn("VM {}: aborting the migration: {}", vm.name, st.error().what());
      }
    }
    auto s = driver_.job(vm.uuid);
    if (!s) spdlog::debug("VM {}: no job statistics: {}", vm.name, s.error().what());
    if (s && s->active) {
      last = *s;
      if (progress) progress(last);
      if (r.options.postcopy && !postcopy && !abort_sent && last.memory_iteration >= 2) {
        // Memory went over once: what is dirty from now on is fetched by the destination on demand.
        if (auto st = driver_.start_postcopy(vm.uuid); st) {
          postcopy = true;
          spdlog::info("VM {}: switched to post-copy after {} ms", vm.name, last.elapsed_ms);
        } else {
          spdlog::warn("VM {}: switching to post-copy: {}", vm.name, st.error().what());
        }
      }
    }
    sleep_(limits_.poll);
  }
  driver_.end(vm.uuid);
  const uint64_t measured = ms_between(t0, clock_());
  if (end.status.ok()) return after_success(vm, r, measured, last, postcopy);
  if (cancelled) return after_failure(vm, r, Error(Errc::conflict, "cancelled"));
  if (timed_out)
    return after_failure(
        vm, r, Error(Errc::unavailable, fmt::format("timed out after {} ms and aborted", r.options.timeout.count())));
  return after_failure(vm, r, end.status.error());
}

Result<MigrationReport> Migrator::after_success(const SourceVm& vm, const MigrationRequest& r, uint64_t measured_ms,
                                                const JobStats& last, bool postcopy) {
  // Exactly one host: running on the destination, and nothing of it running here.
  auto there = driver_.presence(r.destination_uri, vm.uuid);
  auto here = driver_.presence("", vm.uuid);
  if (!there || *there != Presence::running)
    return Error(Errc::internal,
                 fmt::format("libvirt reported VM {} migrated, but it is not running on {} ({})", vm.name,
                             r.destination_uri, there ? presence_name(*there) : there.error().what()));
  if (here && (*here == Presence::running || *here == Presence::paused))
    return Error(Errc::internal,
                 fmt::format("VM {} is {} on both hosts after its migration", vm.name, presence_name(*here)));

  MigrationReport rep{vm.uuid,  vm.name, r.destination_uri, 0, measured_ms, last.data_processed, last.memory_iteration,
                      postcopy, {}};
  if (auto c = driver_.completed(r.destination_uri, vm.uuid); c) {
    rep.downtime_ms = c->downtime_ms;
    rep.total_ms = c->elapsed_ms ? c->elapsed_ms : measured_ms;
    rep.bytes = c->data_processed;
    rep.iterations = c->memory_iteration;
  } else {
    rep.warning = fmt::format(
        "the destination's job statistics are not readable ({}): total and bytes are the "
        "source's last figures, downtime unknown",
        c.error().what());
    spdlog::warn("VM {}: {}", vm.name, rep.warning);
  }
  spdlog::info("VM {} migrated to {} in {} ms (downtime {} ms, {} bytes)", vm.name, r.destination_uri, rep.total_ms,
               rep.downtime_ms, rep.bytes);
  return rep;
}

Error Migrator::after_failure(const SourceVm& vm, const MigrationRequest& r, Error cause) {
  // The VM must go on here: a failed migration may leave it paused on the source.
  std::string where;
  auto here = driver_.presence("", vm.uuid);
  if (here && *here == Presence::paused) {
    if (auto st = driver_.resume(vm.uuid); st) {
      here = driver_.presence("", vm.uuid);
    } else {
      where += fmt::format("; resuming it here failed: {}", st.error().what());
    }
  }
  if (!here) {
    where += fmt::format("; its state here is unknown: {}", here.error().what());
  } else if (*here == Presence::running) {
    where += "; the VM runs on this host";
  } else {
    where += fmt::format("; the VM is {} on this host", presence_name(*here));
  }
  auto there = driver_.presence(r.destination_uri, vm.uuid);
  if (!there) {
    where += fmt::format("; the destination does not answer ({}), so what it holds is unknown", there.error().what());
  } else if (*there != Presence::absent) {
    where += fmt::format("; the destination still has it ({})", presence_name(*there));
  }
  spdlog::warn("migration of VM {} to {} failed: {}{}", vm.name, r.destination_uri, cause.what(), where);
  return Error(cause.code(),
               fmt::format("migrating VM {} to {}: {}{}", vm.name, r.destination_uri, cause.what(), where));
}

}  // namespace morph::agent::migration
