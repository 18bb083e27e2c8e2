#pragma once
// Morph's own programs as processes of a test: where they are built, `morph-agent run` with synthetic VMs
// on a controller's ipc:// sockets, what the daemons print once they serve, and a controller plus a
// synthetic agent in a private directory (the operator-facing integration tests). Nothing here links
// Morph's libraries: the processes are the real programs.

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "tests/support/files.h"
#include "tests/support/process.h"

namespace morph::test {

// A program of the build tree, e.g. program("controller/morph-controller").
std::string program(const std::string& path_in_build);

// `morph-agent [--log-level L] run --host host-a` with `vms` synthetic VMs on the ipc sockets in `ipc_dir`,
// 200 ms intervals, no metrics listener and no lease state file.
std::vector<std::string> synthetic_agent_argv(const std::filesystem::path& ipc_dir, int vms,
                                              const std::string& log_level = {});

// The port of "metrics on http://HOST:PORT/metrics" in a daemon's log, once it is there.
std::optional<uint16_t> printed_metrics_port(const std::string& log);
// The URL of the "dashboard http://HOST:PORT" line a controller or morph-dashboard prints once it serves.
std::string printed_dashboard_url(const std::string& out);

// `morph-controller run` (market on, 200 ms ticks, no HTTP servers unless asked) and a synthetic agent on
// ipc:// sockets in a fresh temporary directory, both at the given log level.
class ControllerAndAgent {
 public:
  void start(const std::string& log_level, int vms, std::vector<std::string> controller_extra = {});
  void stop();
  // Stops both; the directory goes, unless the test failed (then its logs stay for a look).
  void cleanup(bool failed);
  RunResult morphctl(std::vector<std::string> args);

  std::filesystem::path dir, ipc;
  std::unique_ptr<ChildProcess> controller, agent;

 private:
  std::unique_ptr<TempDir> tmp_;
  int calls_ = 0;
};

// A test on a controller and a synthetic agent (env.start() in the test) whose logs stay when it fails.
class OnControllerAndAgent : public ::testing::Test {
 protected:
  void TearDown() override { env.cleanup(HasFailure()); }
  // What a `--json` command printed; discarded (is_discarded()) when it is not JSON.
  static nlohmann::json js(const RunResult& r) { return nlohmann::json::parse(r.out, nullptr, false); }
  ControllerAndAgent env;
};

}  // namespace morph::test
