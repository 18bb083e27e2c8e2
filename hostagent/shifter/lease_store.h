#pragma once
// LeaseStore: where the shifting engine keeps what must outlive an agent restart: per VM, the baseline
// captured before its first shift, the resources shifted since, the lease's end and the last command. The
// engine saves the whole set after every change and loads it once, in reconcile(). How the records are
// kept on disk is the store's business (hostagent/lease_state/ keeps them as the JSON file of
// lease.state_file); the engine never sees a file format, and a store never interprets the records.

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/error.h"
#include "hostagent/shifter/shift.h"

namespace morph::agent::shifter {

struct LeaseRecord {
  std::string vm_uuid;
  InForce baseline;
  std::set<Resource> shifted;
  std::optional<TimePoint> lease;  // none: held
  uint64_t last_command = 0;
};

class LeaseStore {
 public:
  virtual ~LeaseStore() = default;
  // Replaces what is stored with `records`.
  virtual Status save(const std::vector<LeaseRecord>& records) = 0;
  // What was saved last; none when nothing ever was (a first start).
  virtual Result<std::vector<LeaseRecord>> load() = 0;
};

}  // namespace morph::agent::shifter
