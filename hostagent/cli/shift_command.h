#pragma once
// `morph-agent shift VM RESOURCE VALUE [--lease 30s]`: the operator's direct use of the Resource Shifting
// Engine, without a controller. Without --lease the values stay in force; with it the command waits for
// the lease to run out (or Ctrl-C) and reverts the VM to its baseline. The checks of its arguments are
// parse_shift_args, so they are unit-tested without libvirt.

#include <chrono>
#include <string>

#include "common/error.h"
#include "hostagent/shifter/shift.h"

namespace morph::agent::cli {

struct ShiftArgs {
  std::string vm, resource, value, lease, on_expiry = "revert", uri = "qemu:///system";
};

// The adjustment and lease the arguments ask for; Errc::invalid_argument naming the bad one (an unknown
// resource lists the known ones). No --lease: a lease of a year, i.e. the values stay.
struct ShiftPlan {
  shifter::Adjustment adjustment;
  std::chrono::milliseconds lease;
};
Result<ShiftPlan> parse_shift_args(const ShiftArgs& args);

}  // namespace morph::agent::cli
