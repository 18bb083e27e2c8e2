#pragma once
// Real processes for the operator-facing integration tests (cli_json_test, log_search_test): a child with
// stdout/stderr in files, killed (SIGTERM, then SIGKILL) when it goes out of scope; a command run to completion
// with a timeout; a controller plus a synthetic-VM agent on ipc:// sockets in a private temp dir.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/requirements.h"
#include "tests/support/wait.h"

extern char** environ;

namespace morph::test {

inline std::string slurp_file(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline pid_t spawn_to_files(const std::vector<std::string>& argv, const std::filesystem::path& out) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&fa, 2, (out.string() + ".err").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  std::vector<std::string> copy = argv;
  std::vector<char*> args;
  for (auto& a : copy) args.push_back(a.data());
  args.push_back(nullptr);
  pid_t pid = -1;
  if (posix_spawn(&pid, args[0], &fa, nullptr, args.data(), environ) != 0) pid = -1;
  posix_spawn_file_actions_destroy(&fa);
  return pid;
}

class ChildProcess {
 public:
  ChildProcess(const std::vector<std::string>& argv, std::filesystem::path out) : out_(std::move(out)) {
    pid_ = spawn_to_files(argv, out_);
  }
  ~ChildProcess() { stop(); }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  // SIGTERM, then SIGKILL after 2 s: lets the process flush its log.
  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 40; ++i) {
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  bool alive() const { return pid_ > 0 && ::waitpid(pid_, nullptr, WNOHANG) == 0; }
  std::string out() const { return slurp_file(out_); }
  std::string err() const { return slurp_file(out_.string() + ".err"); }

 private:
  pid_t pid_ = -1;
  std::filesystem::path out_;
};

struct RunResult {
  int rc = -1;  // exit status; 128+signal; -1 when it did not finish in time (killed)
  std::string out, err;
};

inline RunResult run_to_end(const std::vector<std::string>& argv, const std::filesystem::path& out,
                            std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  RunResult r;
  pid_t pid = spawn_to_files(argv, out);
  if (pid <= 0) return r;
  int st = 0;
  auto end = std::chrono::steady_clock::now() + timeout;
  bool done = false;
  while (!done) {
    if (::waitpid(pid, &st, WNOHANG) == pid) {
      done = true;
      r.rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    } else if (std::chrono::steady_clock::now() > end) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &st, 0);
      break;
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  r.out = slurp_file(out);
  r.err = slurp_file(out.string() + ".err");
  return r;
}

// `morph-controller run` (market on, fast ticks, no HTTP servers unless asked) and `morph-agent run
// --synthetic-vms N` on ipc:// sockets in a fresh temp dir, both at the given log level.
class ControllerAndAgent {
 public:
  void start(const std::string& log_level, int vms, std::vector<std::string> controller_extra = {}) {
    char tmpl[] = "/tmp/morph-ops-test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir = tmpl;
    ipc = dir / "ipc";
    for (auto* b : {"/controller/morph-controller", "/hostagent/morph-agent", "/controller/cli/morphctl"})
      ASSERT_EQ(access((binary_dir() + b).c_str(), X_OK), 0) << binary_dir() + b << " is not built";
    std::vector<std::string> c = {binary_dir() + "/controller/morph-controller",
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
    agent = std::make_unique<ChildProcess>(
        std::vector<std::string>{binary_dir() + "/hostagent/morph-agent", "--log-level", log_level, "run", "--host",
                                 "host-a", "--ingest", "ipc://" + (ipc / "ingest").string(), "--control",
                                 "ipc://" + (ipc / "control").string(), "--interval-ms", "200", "--synthetic-vms",
                                 std::to_string(vms), "--metrics-listen", "", "--lease-state-file", ""},
        dir / "agent.out");
  }
  void stop() {
    agent.reset();
    controller.reset();
  }
  // Removes the temp dir unless the test failed (then its logs stay for a look).
  void cleanup(bool failed) {
    stop();
    std::error_code ec;
    if (!failed && !dir.empty())
      std::filesystem::remove_all(dir, ec);
    else if (failed)
      std::fprintf(stderr, "logs kept in %s\n", dir.c_str());
  }
  RunResult morphctl(std::vector<std::string> args) {
    std::vector<std::string> argv = {binary_dir() + "/controller/cli/morphctl", "--connect",
                                     "ipc://" + (ipc / "api").string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_to_end(argv, dir / ("morphctl." + std::to_string(++calls_) + ".out"));
  }

  std::filesystem::path dir, ipc;
  std::unique_ptr<ChildProcess> controller, agent;

 private:
  int calls_ = 0;
};

}  // namespace morph::test
