#pragma once
// `morph-agent shift VM RESOURCE VALUE [--lease 30s]`: the operator's direct use of the Resource Shifting
// Engine, without a controller. Without --lease the values stay in force; with it the command waits for
// the lease to run out (or Ctrl-C) and reverts the VM to its baseline.

#include <CLI/CLI.hpp>
#include <memory>
#include <string>

namespace morph::agent::shifter {

struct ShiftCli {
  CLI::App* command = nullptr;
  std::string vm, resource, value, lease, on_expiry = "revert", uri = "qemu:///system";
};

std::shared_ptr<ShiftCli> add_shift_command(CLI::App& app);
int run_shift_command(const ShiftCli& cli);

}  // namespace morph::agent::shifter
