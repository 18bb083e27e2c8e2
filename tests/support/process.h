#pragma once
// Child processes of a test: a program started with posix_spawn, its stdout and stderr in files, stopped
// with a chosen signal (SIGKILL after a grace period) at the latest when it goes out of scope, so a test
// never leaves a process behind. Also a command run to completion with a timeout. Never a shell: see
// shell.h for that.

#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace morph::test {

struct ChildOptions {
  std::vector<std::string> env;            // KEY=VALUE set on top of this process's environment
  bool merge_stderr = false;               // stderr into the stdout file as well (else into OUT.err)
  bool own_group = false;                  // the child leads a process group of its own; stopping signals the group
  int stop_signal = SIGTERM;               // what going out of scope sends first
  std::chrono::milliseconds grace{10000};  // how long going out of scope waits for the exit before SIGKILL
};

class ChildProcess {
 public:
  // argv[0] is the program's path. stdout goes to `out` (truncated), stderr to `out` + ".err"; both to
  // /dev/null when `out` is /dev/null.
  ChildProcess(std::vector<std::string> argv, std::filesystem::path out, ChildOptions options = {});
  ~ChildProcess();  // stop(options.stop_signal, options.grace)
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  bool started() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  // Running (not exited); reaps the child if it has exited.
  bool alive();
  // Sends `sig` (to the group with own_group), waits up to `grace` for the exit, then SIGKILL and waits.
  // The exit status (128 + signal when killed by one); -1 when it never started.
  int stop(int sig = SIGTERM, std::chrono::milliseconds grace = std::chrono::seconds(10));
  int kill9() { return stop(SIGKILL, std::chrono::milliseconds(0)); }
  // Waits for the exit by itself: its status, or -1 when it is still running after `timeout`.
  int wait_exit(std::chrono::milliseconds timeout);
  // Waits for the exit however long it takes (blocking in waitpid: no polling delay in what a benchmark
  // times); its status, -1 when it never started.
  int wait();
  // The exit status once the child has been reaped.
  std::optional<int> status() const { return status_; }

  const std::filesystem::path& out_path() const { return out_; }
  std::filesystem::path err_path() const;
  std::string out() const;
  std::string err() const;
  std::string log() const { return out() + err(); }  // both, stdout first

 private:
  void reaped(int wait_status);
  pid_t pid_ = -1;
  std::optional<int> status_;
  std::filesystem::path out_;
  ChildOptions options_;
};

struct RunResult {
  int rc = -1;  // exit status; 128 + signal; -1 when it did not finish in time (then it was killed)
  std::string out, err;
};

// Runs argv to completion (stdout in `out`, stderr in `out`.err), killing it after `timeout`.
RunResult run_to_end(const std::vector<std::string>& argv, const std::filesystem::path& out,
                     std::chrono::milliseconds timeout = std::chrono::seconds(20));

}  // namespace morph::test
