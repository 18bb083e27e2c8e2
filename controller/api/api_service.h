#pragma once
// ApiService: answers one verified ApiRequest. Host, VM, KPI and snapshot queries are served from the
// HostTable; accounts, bids, prices, allocations and the ledger go to the MarketApi. Errors become an
// ApiReply with an Error {code, message}. Runs on the messaging thread.

#include <flatbuffers/flatbuffers.h>

#include "controller/api/market_api.h"
#include "controller/ingest/host_table.h"

namespace morph::controller {

class ApiService {
 public:
  ApiService(const HostTable& hosts, MarketApi& market) : hosts_(hosts), market_(market) {}
  // Builds the reply into fbb (finished with the ApiReply identifier).
  void handle(const Caller& caller, const v1::ApiRequest& req, uint64_t events_seq, uint64_t incarnation,
              flatbuffers::FlatBufferBuilder& fbb);
  // A reply carrying only an error (for requests that failed verification, request_id 0 if unknown).
  static void error_reply(flatbuffers::FlatBufferBuilder& fbb, uint64_t request_id, const Error& e);

 private:
  Result<ReplyBody> builtin(const Caller& caller, const v1::ApiRequest& req, uint64_t events_seq, uint64_t incarnation,
                            flatbuffers::FlatBufferBuilder& fbb, bool& handled);
  const HostTable& hosts_;
  MarketApi& market_;
};

}  // namespace morph::controller
