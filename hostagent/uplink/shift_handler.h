#pragma once
// ShiftHandler: where the uplink hands ShiftCommands to the Resource Shifting Engine (hostagent/shifter).
// apply() is called on the uplink thread and must not block: a shift may take minutes (storage copy,
// migration). The handler calls `done` exactly once, from any thread, with the values in force or an
// error; the uplink sends the ShiftResult. Duplicate command ids are answered by the uplink from its
// cache and never reach the handler twice. Lease events are reported with Uplink::report().

#include <functional>

#include "common/msg/shift.h"

namespace morph::agent {

using ShiftDone = std::function<void(msg::ShiftOutcome)>;

class ShiftHandler {
 public:
  virtual ~ShiftHandler() = default;
  virtual void apply(msg::ShiftOrder order, ShiftDone done) = 0;
  virtual void renew(const msg::LeaseRenewal& /*renewal*/) {}
};

// Until the shifter is plugged in: every command fails with ErrorCode::unavailable.
class ShiftUnavailable final : public ShiftHandler {
 public:
  void apply(msg::ShiftOrder order, ShiftDone done) override {
    done(msg::ShiftOutcome::failed(order, Error(Errc::unavailable, "no shifting engine on this agent")));
  }
};

}  // namespace morph::agent
