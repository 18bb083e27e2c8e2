#pragma once
// EngineShiftHandler: the uplink's ShiftHandler over the Resource Shifting Engine (hostagent/shifter).
// It owns two threads so the uplink thread never waits on the engine (a shift may take minutes):
//   - the shift worker: converts each msg::ShiftOrder into a shifter::ShiftRequest, runs
//     ShiftEngine::shift, and answers `done` with the values read back;
//   - the lease keeper: applies renewals in arrival order, calls expire_due() every ~100 ms, ends every
//     lease when the controller has been silent for longer than the default lease (controller_lost(), which
//     reverts or holds per lease.on_expiry), and reports each lease event through the report callback;
//     each time the controller comes (back) up it also reports what is in force under every lease the
//     engine holds (ShiftEngine::in_force_report(), including leases reloaded after an agent restart).
// It must never touch libvirt or the probes itself: everything goes through the engine.

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "common/metrics.h"
#include "hostagent/shifter/shift_engine.h"
#include "hostagent/uplink/shift_handler.h"

namespace morph::agent {

// msg <-> shifter conversions (pure; unit-tested).
Result<shifter::ShiftRequest> to_shift_request(const msg::ShiftOrder& order, std::chrono::milliseconds default_lease);
msg::ShiftOutcome to_msg_outcome(const shifter::ShiftOutcome& out, const msg::ShiftOrder& order);
msg::ShiftOutcome to_revert_report(const shifter::LeaseEvent& ev);
// What a (restarted) agent finds in force under a lease, reported on (re)connect: not reverted.
msg::ShiftOutcome to_in_force_report(const shifter::ShiftOutcome& out);
std::vector<msg::ResourceSetting> in_force_settings(const shifter::InForce& f, bool with_pin, bool with_tier);

class EngineShiftHandler final : public ShiftHandler {
 public:
  struct Options {
    std::chrono::milliseconds default_lease{5000};
    std::chrono::milliseconds expiry_period{100};
  };
  using Report = std::function<void(msg::ShiftOutcome)>;
  using ControllerUp = std::function<bool()>;

  EngineShiftHandler(std::shared_ptr<shifter::ShiftEngine> engine, Options options, metrics::Registry& registry);
  ~EngineShiftHandler() override;
  EngineShiftHandler(const EngineShiftHandler&) = delete;
  EngineShiftHandler& operator=(const EngineShiftHandler&) = delete;

  // Starts both threads. Lease events go to `report`; `controller_up` is polled by the lease keeper.
  void start(Report report, ControllerUp controller_up);
  void stop();

  void apply(msg::ShiftOrder order, ShiftDone done) override;
  void renew(const msg::LeaseRenewal& renewal) override;

 private:
  void shift_loop();
  void lease_loop();

  std::shared_ptr<shifter::ShiftEngine> engine_;
  Options opt_;
  Report report_;
  ControllerUp controller_up_;
  std::shared_ptr<metrics::Counter> applied_, failed_, reverted_, held_, revert_failed_, renewals_, lost_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::deque<std::pair<msg::ShiftOrder, ShiftDone>> orders_;
  std::deque<msg::LeaseRenewal> renewals_q_;
  std::thread shift_thread_, lease_thread_;
};

}  // namespace morph::agent
