#pragma once
// `morph-controller run`: bind the four endpoints and serve until SIGINT/SIGTERM, or until the ZAP handler
// dies (exit status 3: never serve unauthenticated). Settings come from --config (TOML, table
// [messaging]: ingest, control, api, events, key, allow, ipc_dir) with flags overriding it.

#include <CLI/CLI.hpp>

#include <memory>
#include <string>

#include "controller/api/market_api.h"

namespace morph::controller {

struct RunOptions {
  CLI::App* command = nullptr;
  std::string config_file;
  std::string ingest, control, api, events;  // empty: from config, else defaults
  std::string ipc_dir;                       // all four endpoints as ipc:// sockets in this 0700 directory
  std::string key_file;                      // the controller's NAME.key
  std::string allow_file;                    // the allow-list
};

std::shared_ptr<RunOptions> add_run_command(CLI::App& app);
// market: the MarketApi to plug in (nullptr: MarketUnavailable).
int run_controller(const RunOptions& opts, std::shared_ptr<MarketApi> market = nullptr);

}  // namespace morph::controller
