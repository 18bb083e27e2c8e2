#pragma once
// VmDirectory: the VMs the agents report, as the parts of the market read them: which host each runs on,
// its baseline and ceiling, and which account owns it. The fleet feed keeps it (controller/fleet); shift
// dispatch, rescue and the api handlers only read it, with MarketState's lock held.

#include <string>

#include "controller/market/types.h"

namespace morph::controller {

struct VmRecord {
  std::string host;
  std::string owner_meta;             // the owner the domain's metadata names
  market::ResourceVector baseline{};  // what the VM was given
  market::ResourceVector ceiling{};   // what the agent says the VM can use at most; 0: not said
};

class VmDirectory {
 public:
  virtual ~VmDirectory() = default;
  virtual const VmRecord* find_vm(const std::string& vm) const = 0;
  virtual bool has_host(const std::string& host) const = 0;
  // An admin's override, else the owner the VM's metadata names; empty when neither says.
  virtual std::string owner_of(const std::string& vm) const = 0;
};

}  // namespace morph::controller
