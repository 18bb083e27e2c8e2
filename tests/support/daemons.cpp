#include "tests/support/daemons.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <regex>
#include <sstream>

#include "tests/support/requirements.h"
#include "tests/support/wait.h"

namespace morph::test {

std::string program(const std::string& path_in_build) {
  return binary_dir() + "/" + path_in_build;
}

std::vector<std::string> synthetic_agent_argv(const std::filesystem::path& ipc_dir, int vms,
                                              const std::string& log_level) {
  std::vector<std::string> argv = {program("hostagent/morph-agent")};
  if (!log_level.empty()) argv.insert(argv.end(), {"--log-level", log_level});
  argv.insert(argv.end(), {"run", "--host", "host-a", "--ingest", "ipc://" + (ipc_dir / "ingest").string(), "--control",
                           "ipc://" + (ipc_dir / "control").string(), "--interval-ms", "200", "--synthetic-vms",
                           std::to_string(vms), "--metrics-listen", "", "--lease-state-file", ""});
  return argv;
}

std::optional<uint16_t> printed_metrics_port(const std::string& log) {
  std::smatch m;
  if (std::regex_search(log, m, std::regex(R"(metrics on http://[^:]+:(\d+)/metrics)")))
    return static_cast<uint16_t>(std::stoi(m[1]));
  return std::nullopt;
}

std::string printed_dashboard_url(const std::string& out) {
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);)
    if (line.starts_with("dashboard http://")) return line.substr(10);
  return {};
}

void ControllerAndAgent::start(const std::string& log_level, int vms, std::vector<std::string> controller_extra) {
  tmp_ = std::make_unique<TempDir>("ops-test");
  ASSERT_TRUE(tmp_->ok());
  dir = tmp_->path();
  ipc = dir / "ipc";
  for (auto* b : {"controller/morph-controller", "hostagent/morph-agent", "controller/cli/morphctl"})
    ASSERT_EQ(access(program(b).c_str(), X_OK), 0) << program(b) << " is not built";
  std::vector<std::string> c = {program("controller/morph-controller"),
                                "--log-level",
                                log_level,
                                "run",
                                "--ipc-dir",
                                ipc.string(),
                                "--ledger",
                                (dir / "ledger.db").string(),
                                "--tick",
                                "200ms",
                                "--lease",
                                "2s",
                                "--metrics-listen",
                                "",
                                "--dashboard-listen",
                                "",
                                "--set",
                                "market.reserve.cpu=2"};
  c.insert(c.end(), controller_extra.begin(), controller_extra.end());
  controller = std::make_unique<ChildProcess>(c, dir / "controller.out");
  ASSERT_TRUE(
      wait_until([&] { return controller->out().find("events ") != std::string::npos; }, std::chrono::seconds(15)))
      << controller->err();
  agent = std::make_unique<ChildProcess>(synthetic_agent_argv(ipc, vms, log_level), dir / "agent.out");
}

void ControllerAndAgent::stop() {
  agent.reset();
  controller.reset();
}

void ControllerAndAgent::cleanup(bool failed) {
  stop();
  if (tmp_) tmp_->keep(failed);
  tmp_.reset();
}

RunResult ControllerAndAgent::morphctl(std::vector<std::string> args) {
  std::vector<std::string> argv = {program("controller/cli/morphctl"), "--connect", "ipc://" + (ipc / "api").string()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_to_end(argv, dir / ("morphctl." + std::to_string(++calls_) + ".out"));
}

}  // namespace morph::test
