#pragma once
// The seam where the market and ledger plug into the controller's messaging.
//
// MarketApi answers the api requests the messaging layer does not own: accounts (create/get/list/
// deposit), bids (submit/amend/cancel/list) and the market queries (prices, allocations, ledger); it adds
// prices and allocations to snapshots, and hears shift results and host liveness. All calls come from the
// controller's messaging thread, one at a time: an implementation needs no locking against them, but must
// not block for long (a ledger commit per tick is fine; a network call is not).
//
// ControllerLink is what the market calls back: publish events and send shift commands. It is thread-safe
// (the market's clearing thread may call it); the work is handed to the messaging thread.
//
// Until a market is plugged in, MarketUnavailable answers every such request with ErrorCode::unavailable.

#include <flatbuffers/flatbuffers.h>

#include <functional>
#include <string>
#include <vector>

#include "api_reply_generated.h"
#include "api_request_generated.h"
#include "common/error.h"
#include "common/msg/curve_keys.h"
#include "common/msg/shift.h"
#include "host_hello_generated.h"
#include "market_event_generated.h"

namespace morph::controller {

// Who sent a request, from the ZAP User-Id of the connection. Local (ipc) clients are admins: the 0700
// socket directory is their authentication.
struct Caller {
  msg::Role role = msg::Role::admin;
  std::string name;
  std::string account;  // tenants: the only account they may act on
  bool local = false;
  bool sees_all = false;  // the in-process dashboard: reads every account's rows, acts on none
  bool may_act_on(std::string_view acct) const { return role == msg::Role::admin || account == acct; }
  // Whether rows of `acct` (allocations in a snapshot) are shown to this caller.
  bool may_see(std::string_view acct) const { return sees_all || may_act_on(acct); }
};

// A reply body built into the reply's builder.
struct ReplyBody {
  v1::ApiReplyBody type = v1::ApiReplyBody::NONE;
  flatbuffers::Offset<void> offset;
};

class MarketApi {
 public:
  virtual ~MarketApi() = default;
  // Accounts, bids, prices, allocations, ledger. Build the reply body into fbb, or return an Error (its
  // Errc becomes the reply's ErrorCode, its what() the message). Check caller.may_act_on(account).
  virtual Result<ReplyBody> handle(const Caller& caller, const v1::ApiRequest& request,
                                   flatbuffers::FlatBufferBuilder& fbb) = 0;
  // Adds the market's part of a Clone snapshot: the prices, and the allocations `caller` may see (a
  // tenant's own, as the allocations query).
  virtual void snapshot(const Caller& /*caller*/, flatbuffers::FlatBufferBuilder& /*fbb*/,
                        std::vector<flatbuffers::Offset<v1::PriceInfo>>& /*prices*/,
                        std::vector<flatbuffers::Offset<v1::AllocationInfo>>& /*allocations*/) {}
  // The owner in force of `vm` (an admin's override, else `reported`, the host's metadata).
  virtual std::string owner_of(const std::string& /*vm*/, const std::string& reported) { return reported; }
  virtual void on_shift_result(const std::string& /*host*/, const msg::ShiftOutcome& /*result*/) {}
  virtual void on_host_change(const std::string& /*host*/, bool /*up*/) {}
  // A verified HostHello (capacity, VMs with baselines and owners); the host's view is replaced wholesale.
  virtual void on_host_hello(const v1::HostHello& /*hello*/) {}
};

class MarketUnavailable final : public MarketApi {
 public:
  Result<ReplyBody> handle(const Caller&, const v1::ApiRequest& request, flatbuffers::FlatBufferBuilder&) override {
    return Error(Errc::unavailable, std::string(v1::EnumNameApiRequestBody(request.body_type())) +
                                        ": the market is not available on this controller");
  }
};

// Builds a MarketEvent body into fbb; run on the messaging thread, which assigns the seq.
using EventBodyBuilder = std::function<flatbuffers::Offset<void>(flatbuffers::FlatBufferBuilder&)>;

class ControllerLink {
 public:
  virtual ~ControllerLink() = default;
  // Publishes on events under `topic` ("price.<host>", "alloc.<host>", "bid.<account>", "shift.<host>").
  virtual void publish_event(std::string topic, v1::MarketEventBody type, EventBodyBuilder build) = 0;
  // Sends a ShiftCommand to a host's agent. If the host is unknown or down it is not sent and
  // MarketApi::on_shift_result reports ErrorCode::unavailable for it.
  virtual void send_shift(std::string host, msg::ShiftOrder order) = 0;
  virtual void renew_lease(std::string host, msg::LeaseRenewal renewal) = 0;
};

}  // namespace morph::controller
