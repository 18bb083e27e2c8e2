#pragma once
// LeaseStateFile: the shifting engine's LeaseStore as a JSON file (lease.state_file), replaced atomically
// (written to NAME.tmp, then renamed) on every save. The format, version 1:
//   {"version": 1, "vms": [{"uuid": ..., "baseline": {"cpu_millicores": ..., ...}, "shifted": ["cpu", "cpu_shares"],
//                           "lease_expiry_ms": <ms since the epoch, 0 = held>, "last_command": ...}]}
// "shifted" holds common/resource.h names; the older spellings (cpu_millicores, memory_mib) still load.
// It owns only the file's format; what the records mean is the engine's (hostagent/shifter/lease_store.h).

#include <string>

#include "hostagent/shifter/lease_store.h"

namespace morph::agent {

class LeaseStateFile final : public shifter::LeaseStore {
 public:
  explicit LeaseStateFile(std::string path) : path_(std::move(path)) {}
  Status save(const std::vector<shifter::LeaseRecord>& records) override;
  // A missing file is an empty set; one that is not the format above is Errc::protocol, naming the file.
  Result<std::vector<shifter::LeaseRecord>> load() override;

 private:
  std::string path_;
};

}  // namespace morph::agent
