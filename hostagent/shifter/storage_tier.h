#pragma once
// Storage tier moves: a running VM's disk is copied to another storage pool and QEMU switched over to the
// copy (virDomainBlockCopy, a bounded wait until the mirror is ready, then virDomainBlockJobAbort with
// PIVOT). This file owns the pool layout (which directory is which tier, where a copy goes) and the block
// job's state handling. It must never leave a guest without its disk: every failure before the pivot
// cancels the job WITHOUT pivoting, so QEMU keeps the original; the file moved away from is removed only
// after the pivot succeeded and the live XML names the copy. Whether to move is ShiftEngine's decision.

#include <libvirt/libvirt.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "common/error.h"
#include "hostagent/inventory/vm.h"

namespace morph::agent::shifter {

// Values of Resource::storage_tier.
inline constexpr int64_t kTierStandard = 0;
inline constexpr int64_t kTierFast = 1;
inline constexpr int64_t kTierNone = -1;  // read back for a disk that is in neither pool

struct StoragePools {
  // The pools' directories. Both empty: the test bed's layout, taken from the disk itself: a disk in a
  // directory named "standard" or "fast" has its other pool in the sibling directory of the other name
  // (/var/lib/morph-testbed/P/{standard,fast}).
  std::string standard;
  std::string fast;
};

// Where a disk is and where its pools are.
struct DiskPlacement {
  int64_t tier = kTierNone;
  std::string standard_dir;
  std::string fast_dir;
};

// The placement of a disk whose source file is `source`; nullopt when it lies in neither pool. Directories
// compare by their canonical paths when they exist (the test bed's fast pool is a symlink to tmpfs).
std::optional<DiskPlacement> place_disk(const std::string& source, const StoragePools& pools);

// The copy of disk `target` of `vm` in pool directory `dir`: dir/<vm>-<target>.<format>.
std::string copy_path(const std::string& dir, const std::string& vm, const std::string& target,
                      const std::string& format);

// The disk with guest target `target` (e.g. "vda") in a live domain XML (parsed by the inventory's
// parse_domain_xml); not_found when there is none. A running copy's <mirror> is not the disk's source.
Result<VmDisk> find_disk(const std::string& domain_xml, const std::string& target);

// Copy progress in bytes. libvirt reports cur == end only once the mirror is ready to pivot.
struct BlockJobProgress {
  uint64_t cur = 0;
  uint64_t end = 0;
};

// What a move needs from the host: one domain's block jobs and the pools' files. LibvirtBlockCopy in
// production, a fake in unit tests.
class BlockCopyOps {
 public:
  virtual ~BlockCopyOps() = default;
  virtual Result<VmDisk> disk(const std::string& target) = 0;
  // Starts mirroring `target` into a new file `dest` of `format` (the file must not exist).
  virtual Status start_copy(const std::string& target, const std::string& dest, const std::string& format) = 0;
  // nullopt when the disk has no block job (any more): the copy ended or failed.
  virtual Result<std::optional<BlockJobProgress>> job(const std::string& target) = 0;
  // Switches the guest to the copy. Errc::conflict: the mirror is not ready yet (try again).
  virtual Status pivot(const std::string& target) = 0;
  // Cancels the copy without pivoting: the guest stays on its original disk.
  virtual Status abort(const std::string& target) = 0;
  virtual bool exists(const std::string& path) = 0;
  virtual Status remove(const std::string& path) = 0;
  // unavailable when files in `dir` cannot be opened with O_DIRECT (tmpfs before Linux 6.6).
  virtual Status probe_direct_io(const std::string& dir) = 0;
};

struct StorageMoveOptions {
  std::chrono::milliseconds timeout{60000};  // start of the copy to the end of the pivot
  std::chrono::milliseconds poll{100};
  uint64_t bandwidth_bytes_per_s = 0;  // copy rate cap (VIR_DOMAIN_BLOCK_COPY_BANDWIDTH); 0 = none
};

struct StorageMove {
  std::string from;  // disk source before; equal to `to` when the disk already was in the tier
  std::string to;
  std::chrono::milliseconds copy{0};   // start of the copy until the mirror was ready
  std::chrono::milliseconds pivot{0};  // pivot call(s), including waits for readiness
  std::string warning;                 // e.g. the old file could not be removed
  bool moved() const { return from != to; }
};

// Moves disk `target` of VM `vm` (its name, for file names) to `tier` (kTierStandard or kTierFast).
Result<StorageMove> move_disk_to_tier(BlockCopyOps& ops, const std::string& vm, const std::string& target, int64_t tier,
                                      const StoragePools& pools, const StorageMoveOptions& options);

// BlockCopyOps over one libvirt domain (borrowed; must outlive this). Copies run with
// VIR_DOMAIN_BLOCK_COPY_TRANSIENT_JOB, which libvirt requires for a persistent domain; on pivot libvirt
// rewrites the persistent definition to the copy as well.
class LibvirtBlockCopy final : public BlockCopyOps {
 public:
  LibvirtBlockCopy(virDomainPtr dom, uint64_t bandwidth_bytes_per_s) : dom_(dom), bandwidth_(bandwidth_bytes_per_s) {}
  Result<VmDisk> disk(const std::string& target) override;
  Status start_copy(const std::string& target, const std::string& dest, const std::string& format) override;
  Result<std::optional<BlockJobProgress>> job(const std::string& target) override;
  Status pivot(const std::string& target) override;
  Status abort(const std::string& target) override;
  bool exists(const std::string& path) override;
  Status remove(const std::string& path) override;
  Status probe_direct_io(const std::string& dir) override;

 private:
  virDomainPtr dom_;
  uint64_t bandwidth_;
};

}  // namespace morph::agent::shifter
