#pragma once
// ShiftDispatch: allocations become shifts. Each tick's allocations are summed per VM into an increment
// over its baseline. A VM whose increment is new or changed is sent a ShiftCommand with absolute targets
// (baseline + increment, only the resources the market moved, now or before) and a lease; one whose
// increment holds has its lease renewed; one that holds nothing any more is sent its baseline, once. A VM
// whose allocation now names another host (it moved) is sent its whole allocation there as new. CPU
// goes as millicores only: the agent's shifting engine raises the VM's cpu_shares in the same proportion
// to its baseline (docs/market.md, "Allocations become shifts").
//
// It also keeps the recent record of commands sent and results heard (`morphctl shifts`). It never clears
// the market, never applies a shift and never decides a price. Every call is made with MarketState's lock
// held.

#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/metrics.h"
#include "common/msg/shift.h"
#include "controller/market_state/market_state.h"
#include "controller/market_state/vm_directory.h"

namespace morph::controller {

class ShiftDispatch {
 public:
  struct Record {
    std::string host;
    uint64_t command_id = 0;
    std::string vm;
    std::vector<msg::ResourceSetting> adjustments;  // sent, or in force as the agent read it back
    std::string phase;                              // "sent", or the result's (msg::ShiftOutcome::phase)
    v1::ErrorCode error = v1::ErrorCode::ok;
    std::string message;
    uint64_t ts = 0;
  };
  static constexpr size_t kRecords = 500;  // the record keeps this many, newest last

  // Command ids start at the wall clock's ns, so a restarted controller never reuses one an agent holds.
  ShiftDispatch(MarketState& state, const VmDirectory& vms, metrics::Registry* metrics = nullptr);

  // Sends this tick's targets for `allocations` (the tick's, in any order); returns the VMs (sorted) that
  // were sent a new command for an allocation.
  std::vector<std::string> dispatch(const std::vector<market::Allocation>& allocations);
  // The last command sent for a VM's allocation; 0 when it holds none.
  uint64_t command_of(const std::string& vm) const;
  // A ShiftResult from an agent (or the link's own "unavailable" for a host that is down).
  void on_result(const std::string& host, const msg::ShiftOutcome& result);
  const std::deque<Record>& records() const { return records_; }

 private:
  struct VmTarget {
    std::string host;
    market::ResourceVector increment{};
    uint64_t command_id = 0;
    // dispatch's scratch: this tick's increment, and whether the VM holds anything this tick / is new.
    market::ResourceVector next{};
    bool held = false, fresh = false;
  };
  msg::ShiftOrder order_for(const std::string& vm, const market::ResourceVector& was,
                            const market::ResourceVector& inc);
  void send(const std::string& host, msg::ShiftOrder order);
  void keep(Record r);

  MarketState& state_;
  const VmDirectory& vms_;
  std::map<std::string, VmTarget> targets_;  // VMs with an increment in force
  std::deque<Record> records_;
  uint64_t next_command_;
  std::shared_ptr<metrics::Counter> m_sent_;  // null without a registry
};

}  // namespace morph::controller
