#pragma once
// MarketService: the market plugged into the controller (MarketApi + KpiObserver). It owns the Exchange
// (market bound to its ledger) and runs the tick loop on its own thread:
//   - hosts and VMs from HostHellos (capacity, baselines, owners; an admin may override an owner) are fed
//     into the market as they change: a hello feeds its host, an account or owner change every host; a
//     host that is down offers nothing, and a VM its host stops reporting sits out (set_vm_absent);
//   - ticks fall tick_offset after each wall-clock multiple of the tick, where agents end their KPI
//     intervals (common/cadence.h); Exchange::run_tick clears and commits it (one ledger transaction);
//   - events go out as price.<host>, alloc.<host>, bid.<account> (fills, failures with their reason,
//     rescue raises/retires) and shift.<host> ("sent"; results are published by the messaging layer);
//   - every allocation change becomes a ShiftCommand with absolute targets (baseline + increment) and a
//     lease, renewed every tick while the allocation holds; an allocation that ends sends the baseline.
//     CPU goes as millicores only: the agent's shifting engine raises the VM's cpu_shares in the same
//     proportion to its baseline (docs/market.md, "Allocations become shifts").
// Rescue: every KpiReport feeds the RescueEvaluator; a raise is an SLA-tier bid submitted on the owner's
// behalf (listed with rescue = true), a retire cancels it.
//
// Threads: api requests, KPI reports and shift results arrive on the messaging thread; ticks run on the
// service's thread. One mutex serialises them (a tick holds it for one ledger commit).

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/metrics.h"
#include "controller/api/controller_server.h"
#include "controller/api/market_api.h"
#include "controller/ledger/exchange.h"
#include "controller/ledger/ledger.h"
#include "controller/rescue/rescue_policy.h"

namespace morph::controller {

struct MarketServiceConfig {
  std::chrono::nanoseconds tick = std::chrono::seconds(1);
  // Ticks fall this long after each wall-clock multiple of the tick, where agents end their KPI intervals
  // (common/cadence.h): time for the reports of the interval just ended to arrive. Shorter than the tick.
  std::chrono::nanoseconds tick_offset = std::chrono::milliseconds(50);
  std::chrono::nanoseconds lease = std::chrono::seconds(5);
  std::string ledger_path;  // SQLite file
  market::MarketConfig market;
  size_t price_history = 300;  // cleared prices kept per (host, resource, tier)
};

class MarketService final : public MarketApi, public KpiObserver {
 public:
  // Opens the ledger and recovers the market from it.
  static Result<std::shared_ptr<MarketService>> open(MarketServiceConfig cfg, metrics::Registry* metrics = nullptr);
  ~MarketService() override;

  // Where events and shift commands go. Set before start(); must outlive the service's thread.
  void attach(ControllerLink* link) { link_ = link; }
  void start();
  void stop();
  // One tick now (the loop calls this; tests may too).
  Status tick_once();

  // MarketApi
  Result<ReplyBody> handle(const Caller& caller, const v1::ApiRequest& request,
                           flatbuffers::FlatBufferBuilder& fbb) override;
  void snapshot(flatbuffers::FlatBufferBuilder& fbb, std::vector<flatbuffers::Offset<v1::PriceInfo>>& prices,
                std::vector<flatbuffers::Offset<v1::AllocationInfo>>& allocations) override;
  void on_shift_result(const std::string& host, const msg::ShiftOutcome& result) override;
  void on_host_change(const std::string& host, bool up) override;
  void on_host_hello(const v1::HostHello& hello) override;
  // KpiObserver
  void on_kpi_report(const v1::KpiReport& report, uint64_t received_ns) override;

 private:
  struct AccountMeta {
    std::string display_name;
    uint64_t created_ns = 0;
  };
  struct VmEntry {
    std::string host, owner_meta;
    market::ResourceVector baseline{};
    market::ResourceVector ceiling{};  // what the agent says the VM can use at most; 0: not said
  };
  struct HostEntry {
    market::ResourceVector capacity{};
    bool up = true;
  };
  struct PricePoint {
    market::Tick tick;
    market::Micros price;
    int64_t sold;
  };
  struct ShiftRow {
    std::string host;
    uint64_t command_id;
    std::string vm;
    std::vector<msg::ResourceSetting> adjustments;
    std::string phase;
    v1::ErrorCode error = v1::ErrorCode::ok;
    std::string message;
    uint64_t ts;
  };
  struct VmTarget {
    std::string host;
    market::ResourceVector increment{};
    uint64_t command_id = 0;
    // send_targets' scratch: this tick's increment, and whether the VM holds anything this tick / is new.
    market::ResourceVector next{};
    bool held = false, fresh = false;
  };

  MarketService(MarketServiceConfig cfg, std::unique_ptr<ledger::Ledger> ledger, metrics::Registry* metrics);
  void loop();
  std::string owner_of(const std::string& vm) const;
  void feed_inventory();
  void feed_host(const std::string& host);  // the host and the VMs it reported
  Status tick_locked();
  // Sends this tick's targets; returns the VMs (sorted) that were sent a new command for an allocation.
  std::vector<std::string> send_targets(const market::TickOutcome& out);
  // prev[i]: out.allocations[i]'s holding at the last tick (null: new); ended: indexes into last_allocs_.
  void log_bid_steps(const market::TickOutcome& out, const std::vector<const market::Allocation*>& prev,
                     const std::vector<std::string>& sent, const std::vector<size_t>& ended);
  void keep_allocations(std::vector<market::Allocation> allocations);
  Status restore_operator_state();
  flatbuffers::Offset<v1::BidInfo> bid_info(flatbuffers::FlatBufferBuilder& fbb, const market::Bid& b,
                                            market::BidState state) const;
  flatbuffers::Offset<v1::AccountInfo> account_info(flatbuffers::FlatBufferBuilder& fbb, const std::string& a) const;
  flatbuffers::Offset<v1::AllocationInfo> alloc_info(flatbuffers::FlatBufferBuilder& fbb,
                                                     const market::Allocation& a) const;
  void publish_bid(const market::Bid& b, market::BidState state, std::string outcome, std::string reason);
  std::vector<market::Bid> all_bids() const;
  Result<ReplyBody> quote(const v1::QuoteQuery& q, flatbuffers::FlatBufferBuilder& fbb) const;
  Result<ReplyBody> policy_reply(const std::string& vm, flatbuffers::FlatBufferBuilder& fbb) const;
  uint64_t tick_ns() const { return static_cast<uint64_t>(cfg_.tick.count()); }

  MarketServiceConfig cfg_;
  std::unique_ptr<ledger::Ledger> ledger_;
  market::Market market_;
  ledger::Exchange exchange_;
  rescue::RescueEvaluator rescue_;
  ControllerLink* link_ = nullptr;

  mutable std::mutex mu_;
  std::map<std::string, AccountMeta> accounts_;
  std::map<std::string, HostEntry> hosts_;
  std::map<std::string, VmEntry> vms_;
  std::map<std::string, std::vector<std::string>> host_vms_;  // VMs by the host that last reported them
  std::map<std::string, std::string> owner_override_;
  std::set<std::string> unfed_vms_;  // logged once: no owner account yet
  bool hosts_changed_ = false;       // a host went down or came back since the last tick: feed the market
  std::map<std::string, rescue::SlaPolicy> policies_;
  std::map<std::pair<std::string, int>, market::BidId> rescue_bid_;  // (vm, rescue::Signal) → rescue bid in force
  std::set<market::BidId> rescue_ids_;
  std::map<market::BidId, std::string> failure_logged_;  // log search: the last failure logged at info per bid
  // The allocations of the last tick (as committed, or as recovered): what each tick's allocations are told
  // apart against (new, changed, ended) for the alloc./bid. events and the log. Not market_.allocations(),
  // which loses a cancelled bid's allocation at once.
  std::vector<market::Allocation> last_allocs_;
  std::unordered_map<market::BidId, size_t> last_ix_;  // bid → index into last_allocs_
  std::map<std::tuple<std::string, Resource, market::Tier>, std::deque<PricePoint>> prices_;
  std::map<std::string, VmTarget> targets_;  // VMs with an increment in force
  std::deque<ShiftRow> shifts_;
  uint64_t next_command_ = 0;

  std::thread thread_;
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;

  // metrics (null without a registry)
  std::shared_ptr<metrics::Counter> m_ticks_, m_revenue_, m_tick_errors_, m_shifts_;
  std::shared_ptr<metrics::Histogram> m_clear_s_;
  std::array<std::shared_ptr<metrics::Gauge>, market::kTierCount> m_bids_{};
};

}  // namespace morph::controller
