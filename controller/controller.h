#pragma once
// morph-controller: ingests KPIs, clears the market every tick, keeps the ledger, raises rescue bids
// and pushes shift commands to agents. It never touches a host directly.

namespace morph::controller {
const char* version();
}  // namespace morph::controller
