#include "tests/support/process.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <thread>

#include "tests/support/files.h"

extern char** environ;

namespace morph::test {

namespace {

// This process's environment with `overrides` (KEY=VALUE) put over it.
std::vector<std::string> environment_with(const std::vector<std::string>& overrides) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view entry(*e);
    const auto key = entry.substr(0, entry.find('=') + 1);
    bool replaced = false;
    for (const auto& o : overrides) replaced = replaced || std::string_view(o).substr(0, key.size()) == key;
    if (!replaced) env.emplace_back(entry);
  }
  env.insert(env.end(), overrides.begin(), overrides.end());
  return env;
}

std::vector<char*> pointers(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

}  // namespace

ChildProcess::ChildProcess(std::vector<std::string> argv, std::filesystem::path out, ChildOptions options)
    : out_(std::move(out)), options_(std::move(options)) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (err_path() == out_)
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
  else
    posix_spawn_file_actions_addopen(&fa, 2, err_path().c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  // The child starts with no signal blocked and the usual dispositions, whatever this process changed:
  // otherwise a SIGTERM blocked here would be blocked in the child and stop() would wait for the grace.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  for (int s : {SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGCHLD}) sigaddset(&defaults, s);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  if (options_.own_group) {
    posix_spawnattr_setpgroup(&attr, 0);
    flags |= POSIX_SPAWN_SETPGROUP;
  }
  posix_spawnattr_setflags(&attr, flags);
  std::vector<std::string> env = environment_with(options_.env);
  auto args = pointers(argv);
  auto envp = pointers(env);
  if (args.size() < 2 || posix_spawn(&pid_, args[0], &fa, &attr, args.data(), envp.data()) != 0) pid_ = -1;
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&fa);
}

ChildProcess::~ChildProcess() {
  stop(options_.stop_signal, options_.grace);
}

void ChildProcess::reaped(int wait_status) {
  status_ = WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : 128 + WTERMSIG(wait_status);
}

bool ChildProcess::alive() {
  if (pid_ <= 0 || status_) return false;
  int st = 0;
  if (::waitpid(pid_, &st, WNOHANG) != pid_) return true;
  reaped(st);
  return false;
}

int ChildProcess::wait_exit(std::chrono::milliseconds timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (!alive()) return status_.value_or(-1);
    const auto now = std::chrono::steady_clock::now();
    if (now >= end) return -1;
    std::this_thread::sleep_for(
        std::min<std::chrono::steady_clock::duration>(end - now, std::chrono::milliseconds(10)));
  }
}

int ChildProcess::wait() {
  if (pid_ <= 0) return -1;
  if (!status_) {
    int st = 0;
    if (::waitpid(pid_, &st, 0) == pid_) reaped(st);
  }
  return status_.value_or(-1);
}

int ChildProcess::stop(int sig, std::chrono::milliseconds grace) {
  if (pid_ <= 0) return -1;
  if (!alive()) return *status_;
  const pid_t target = options_.own_group ? -pid_ : pid_;
  ::kill(target, sig);
  if (sig != SIGKILL && wait_exit(grace) >= 0) return *status_;
  ::kill(target, SIGKILL);
  return wait();
}

std::filesystem::path ChildProcess::err_path() const {
  return options_.merge_stderr || out_ == "/dev/null" ? out_ : std::filesystem::path(out_.string() + ".err");
}

std::string ChildProcess::out() const {
  return slurp(out_);
}

std::string ChildProcess::err() const {
  return err_path() == out_ ? std::string() : slurp(err_path());
}

RunResult run_to_end(const std::vector<std::string>& argv, const std::filesystem::path& out,
                     std::chrono::milliseconds timeout) {
  RunResult r;
  ChildProcess p(argv, out, {.stop_signal = SIGKILL, .grace = std::chrono::milliseconds(0)});
  if (!p.started()) return r;
  r.rc = p.wait_exit(timeout);
  if (r.rc < 0) p.kill9();
  r.out = p.out();
  r.err = p.err();
  return r;
}

}  // namespace morph::test
