#pragma once
// Logging setup. All components log through spdlog; levels are documented in docs/operations.md:
//   error  — something an operator must act on (a component stopped working)
//   warn   — degraded but continuing (a bad message dropped, a peer lost, a fallback taken)
//   info   — lifecycle and state changes (start, VM appeared, bid won, shift applied)
//   debug  — per-tick and per-message detail
// Messages about a VM carry "vm=<uuid>" (the agent adds "name=<name>"), messages about a bid "bid=<id>" and its
// VM, so logs can be searched by them (docs/operations.md "Searching the logs"; tests/integration/log_search_test).

#include <string>

#include "common/error.h"

namespace morph::log {

// Sets the global level ("trace".."off") and pattern. Returns an error naming a bad level.
Status init(const std::string& level, const std::string& program);

}  // namespace morph::log
