#include "hostagent/shifter/storage_tier.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <libvirt/virterror.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "common/escape.h"
#include "hostagent/inventory/domain_xml.h"
#include "hostagent/shifter/libvirt_mechanisms.h"

namespace morph::agent::shifter {

namespace fs = std::filesystem;
using SteadyClock = std::chrono::steady_clock;

namespace {

// A directory path without a trailing slash, resolved through symlinks as far as it exists.
std::string canonical_dir(const std::string& dir) {
  std::error_code ec;
  fs::path p = fs::weakly_canonical(fs::path(dir), ec);
  if (ec) p = fs::path(dir).lexically_normal();
  std::string s = p.string();
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  return s;
}

std::string xml_escape(const std::string& s) {
  return escaped(s, {{'&', "&amp;"}, {'<', "&lt;"}, {'>', "&gt;"}, {'\'', "&apos;"}, {'"', "&quot;"}});
}

std::chrono::milliseconds since(SteadyClock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - t);
}

Error libvirt_failure(Errc code, const std::string& what) {
  return Error(code, what + ": " + libvirt_last_error());
}

}  // namespace

std::optional<DiskPlacement> place_disk(const std::string& source, const StoragePools& pools) {
  if (source.empty()) return std::nullopt;
  const fs::path dir = fs::path(source).parent_path();
  DiskPlacement p;
  if (!pools.standard.empty() || !pools.fast.empty()) {
    p.standard_dir = pools.standard;
    p.fast_dir = pools.fast;
    const std::string here = canonical_dir(dir.string());
    if (!pools.standard.empty() && here == canonical_dir(pools.standard)) {
      p.tier = kTierStandard;
    } else if (!pools.fast.empty() && here == canonical_dir(pools.fast)) {
      p.tier = kTierFast;
    } else {
      return std::nullopt;
    }
    return p;
  }
  // The test bed's layout: <root>/standard and <root>/fast side by side.
  const std::string name = dir.filename().string();
  if (name != "standard" && name != "fast") return std::nullopt;
  p.tier = name == "fast" ? kTierFast : kTierStandard;
  p.standard_dir = (dir.parent_path() / "standard").string();
  p.fast_dir = (dir.parent_path() / "fast").string();
  return p;
}

std::string copy_path(const std::string& dir, const std::string& vm, const std::string& target,
                      const std::string& format) {
  return (fs::path(dir) / fmt::format("{}-{}.{}", vm, target, format.empty() ? "raw" : format)).string();
}

Result<VmDisk> find_disk(const std::string& domain_xml, const std::string& target) {
  MORPH_TRY_ASSIGN(DomainXml d, parse_domain_xml(domain_xml));
  for (const VmDisk& disk : d.vm.disks)
    if (disk.target == target) return disk;
  return Error(Errc::not_found, fmt::format("domain {} has no disk {}", d.vm.name, target));
}

Result<StorageMove> move_disk_to_tier(BlockCopyOps& ops, const std::string& vm, const std::string& target, int64_t tier,
                                      const StoragePools& pools, const StorageMoveOptions& opt) {
  if (tier != kTierStandard && tier != kTierFast)
    return Error(Errc::invalid_argument, fmt::format("storage tier {} is neither 0 (standard) nor 1 (fast)", tier));
  MORPH_TRY_ASSIGN(VmDisk disk, ops.disk(target));
  auto placement = place_disk(disk.source, pools);
  if (!placement)
    return Error(Errc::invalid_argument,
                 fmt::format("disk {} of {} ('{}') is in neither storage pool", target, vm, disk.source));
  StorageMove mv{disk.source, disk.source};
  if (placement->tier == tier) return mv;  // already there: nothing to copy

  const std::string& dir = tier == kTierFast ? placement->fast_dir : placement->standard_dir;
  if (dir.empty())
    return Error(Errc::invalid_argument,
                 fmt::format("no {} storage pool is configured", tier == kTierFast ? "fast" : "standard"));
  const std::string format = disk.format.empty() ? "raw" : disk.format;
  mv.to = copy_path(dir, vm, target, format);
  // The copy inherits the disk's cache mode; 'none' and 'directsync' open it with O_DIRECT.
  if (disk.cache == "none" || disk.cache == "directsync") MORPH_TRY(ops.probe_direct_io(dir));
  if (ops.exists(mv.to)) {
    // The name belongs to this VM's disk: only an interrupted earlier move leaves a file there, and
    // libvirt refuses to copy onto an existing file.
    spdlog::warn("storage move of {} {}: removing leftover copy {}", vm, target, mv.to);
    MORPH_TRY(ops.remove(mv.to));
  }

  const auto t0 = SteadyClock::now();
  const auto deadline = t0 + opt.timeout;
  // Every failure from here on: cancel without pivot (the guest stays on `from`) and drop the partial copy.
  auto give_up = [&](Error e) -> Error {
    if (auto a = ops.abort(target); !a && a.error().code() != Errc::not_found)
      spdlog::error("storage move of {} {}: cancelling the copy failed: {}", vm, target, a.error().what());
    if (ops.exists(mv.to))
      if (auto r = ops.remove(mv.to); !r)
        spdlog::warn("storage move of {} {}: cannot remove partial copy: {}", vm, target, r.error().what());
    return std::move(e).with_context(fmt::format("moving disk {} of {} to {}", target, vm, mv.to));
  };

  if (auto st = ops.start_copy(target, mv.to, format); !st) {
    if (ops.exists(mv.to)) (void)ops.remove(mv.to);
    return std::move(st).error().with_context(fmt::format("starting the copy of {} {} to {}", vm, target, mv.to));
  }

  BlockJobProgress last;
  for (;;) {
    auto job = ops.job(target);
    if (!job) return give_up(std::move(job).error());
    if (!job->has_value())
      return give_up(
          Error(Errc::io, fmt::format("the copy ended before it was ready, at {} of {} bytes", last.cur, last.end)));
    last = **job;
    if (last.end > 0 && last.cur == last.end) break;
    if (SteadyClock::now() >= deadline)
      return give_up(Error(Errc::unavailable, fmt::format("copy not ready after {} ms ({} of {} bytes)",
                                                          opt.timeout.count(), last.cur, last.end)));
    std::this_thread::sleep_for(opt.poll);
  }
  mv.copy = since(t0);

  const auto p0 = SteadyClock::now();
  for (;;) {
    auto st = ops.pivot(target);
    if (st) break;
    // libvirt's readiness trails QEMU's progress counter by an event: retry while time remains.
    if (st.error().code() != Errc::conflict || SteadyClock::now() >= deadline) return give_up(std::move(st).error());
    std::this_thread::sleep_for(opt.poll);
  }
  mv.pivot = since(p0);

  // Pivoted: the guest runs on the copy, and libvirt has pointed the persistent definition at it too.
  // Only now is the old file garbage (it stopped receiving the guest's writes at the pivot).
  auto now = ops.disk(target);
  if (!now) return std::move(now).error().with_context("reading the disk back after the pivot");
  if (now->source != mv.to)
    return Error(Errc::internal, fmt::format("after the pivot disk {} of {} is on '{}', not '{}'; '{}' is kept", target,
                                             vm, now->source, mv.to, mv.from));
  if (auto r = ops.remove(mv.from); !r) mv.warning = "moved, but the old copy was not removed: " + r.error().what();
  spdlog::info("storage move of {} {}: {} -> {} (copy {} ms, pivot {} ms)", vm, target, mv.from, mv.to, mv.copy.count(),
               mv.pivot.count());
  return mv;
}

// ------------------------------------------------------------------------------------------ libvirt

Result<VmDisk> LibvirtBlockCopy::disk(const std::string& target) {
  char* raw = virDomainGetXMLDesc(dom_, 0);
  if (raw == nullptr) return libvirt_failure(Errc::system, "reading the live XML");
  std::string xml(raw);
  free(raw);  // NOLINT(cppcoreguidelines-no-malloc): libvirt allocates with malloc
  return find_disk(xml, target);
}

Status LibvirtBlockCopy::start_copy(const std::string& target, const std::string& dest, const std::string& format) {
  const std::string xml = fmt::format("<disk type='file'><source file='{}'/><driver type='{}'/></disk>",
                                      xml_escape(dest), xml_escape(format));
  virTypedParameterPtr params = nullptr;
  int n = 0, cap = 0;
  if (bandwidth_ > 0) virTypedParamsAddULLong(&params, &n, &cap, VIR_DOMAIN_BLOCK_COPY_BANDWIDTH, bandwidth_);
  // TRANSIENT_JOB: libvirt refuses copies of persistent domains otherwise ("domain is not transient").
  const int rc = virDomainBlockCopy(dom_, target.c_str(), xml.c_str(), params, n, VIR_DOMAIN_BLOCK_COPY_TRANSIENT_JOB);
  virTypedParamsFree(params, n);
  if (rc != 0) return libvirt_failure(Errc::system, "virDomainBlockCopy");
  return {};
}

Result<std::optional<BlockJobProgress>> LibvirtBlockCopy::job(const std::string& target) {
  virDomainBlockJobInfo info{};
  const int rc = virDomainGetBlockJobInfo(dom_, target.c_str(), &info, VIR_DOMAIN_BLOCK_JOB_INFO_BANDWIDTH_BYTES);
  if (rc < 0) return libvirt_failure(Errc::system, "virDomainGetBlockJobInfo");
  if (rc == 0) return std::optional<BlockJobProgress>{};
  return std::optional<BlockJobProgress>{BlockJobProgress{info.cur, info.end}};
}

Status LibvirtBlockCopy::pivot(const std::string& target) {
  if (virDomainBlockJobAbort(dom_, target.c_str(), VIR_DOMAIN_BLOCK_JOB_ABORT_PIVOT) == 0) return {};
  const virErrorPtr e = virGetLastError();
  const Errc code = e != nullptr && e->code == VIR_ERR_BLOCK_COPY_ACTIVE ? Errc::conflict : Errc::system;
  return libvirt_failure(code, "pivoting to the copy");
}

Status LibvirtBlockCopy::abort(const std::string& target) {
  if (virDomainBlockJobAbort(dom_, target.c_str(), 0) == 0) return {};
  const virErrorPtr e = virGetLastError();
  // No job any more (it failed on its own): nothing to cancel.
  const Errc code = e != nullptr && (e->code == VIR_ERR_INVALID_ARG || e->code == VIR_ERR_OPERATION_INVALID)
                        ? Errc::not_found
                        : Errc::system;
  return libvirt_failure(code, "cancelling the copy");
}

bool LibvirtBlockCopy::exists(const std::string& path) {
  std::error_code ec;
  return fs::exists(fs::symlink_status(path, ec));
}

Status LibvirtBlockCopy::remove(const std::string& path) {
  std::error_code ec;
  if (!fs::remove(path, ec) && ec) return Error(Errc::system, fmt::format("removing {}", path), ec.value());
  return {};
}

Status LibvirtBlockCopy::probe_direct_io(const std::string& dir) {
  std::string name = (fs::path(dir) / ".morph-odirect-XXXXXX").string();
  const int fd = mkostemp(name.data(), O_DIRECT);
  if (fd >= 0) {
    close(fd);
    unlink(name.c_str());
    return {};
  }
  const int err = errno;
  if (err == EINVAL)
    return Error(Errc::unavailable,
                 fmt::format("the file system of {} refuses O_DIRECT, which the disk's cache mode needs "
                             "(tmpfs before Linux 6.6)",
                             dir),
                 err);
  return Error::from_errno(fmt::format("probing O_DIRECT in {}", dir), err);
}

}  // namespace morph::agent::shifter
