#pragma once
// `morph-agent run`: connect to the controller, announce the host, heartbeat, publish KPIs, take shift
// commands. main.cpp only registers and dispatches it.

#include <CLI/CLI.hpp>

#include <memory>
#include <string>

namespace morph::agent {

struct RunOptions {
  CLI::App* command = nullptr;
  std::string host;
  std::string ingest = "tcp://127.0.0.1:7710";
  std::string control = "tcp://127.0.0.1:7711";
  std::string key_file;         // this agent's NAME.key
  std::string server_key_file;  // the controller's NAME.pub
  int interval_ms = 1000;
  int synthetic_vms = 0;
  std::string version;
};

std::shared_ptr<RunOptions> add_run_command(CLI::App& app, std::string version);
int run_agent(const RunOptions& opts);

}  // namespace morph::agent
