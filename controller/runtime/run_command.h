#pragma once
// `morph-controller run`: bind the four endpoints, run the market (MarketService, assembled from its parts in
// controller/runtime/market_service.h) with its KPI consumers (kpi_consumers.h), serve the
// dashboard on dashboard.listen (controller/dashboard/, a read-only client of those endpoints; over CURVE with a
// key pair generated at start) and serve until SIGINT/SIGTERM, or until the ZAP handler dies (exit status 3:
// never serve unauthenticated). Prints the bound endpoints, then "metrics URL" and "dashboard URL", on stdout.
// Settings come from the controller schema (common/config_schemas.h): defaults, then --config FILE, then
// --set key=value and the typed flags bound to keys (--api, --tick, --ledger, ...).

#include <CLI/CLI.hpp>
#include <memory>
#include <string>

#include "common/config.h"
#include "controller/api/market_api.h"

namespace morph::controller {

struct RunOptions {
  CLI::App* command = nullptr;
  std::unique_ptr<config::CommandLine> cli;  // --config, --set and the flags bound to keys
  std::string ipc_dir;                       // all four endpoints as ipc:// sockets in this 0700 directory
  std::string key_file;                      // the controller's NAME.key
  std::string allow_file;                    // the allow-list (overrides security.allow_list)
  std::string lease = "5s";                  // lease of each ShiftCommand, renewed every tick
  bool no_market = false;                    // serve messaging only (MarketUnavailable)
};

std::shared_ptr<RunOptions> add_run_command(CLI::App& app);
// market: a MarketApi to plug in instead of the market service built from the config (tests).
int run_controller(const RunOptions& opts, std::shared_ptr<MarketApi> market = nullptr);

}  // namespace morph::controller
