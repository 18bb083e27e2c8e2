#pragma once
// Shared by the agent_run_* tests (integration, e2e, bench): the `morph-agent run` process, its log, and
// /metrics scraped over a plain socket.

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/wait.h"

extern char** environ;

namespace morph::test {

class AgentProcess {
 public:
  // stdout to out_file, stderr to out_file + ".err".
  AgentProcess(std::vector<std::string> argv, std::string out_file) : out_(std::move(out_file)) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&fa, 2, (out_ + ".err").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    if (posix_spawn(&pid_, args[0], &fa, nullptr, args.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&fa);
  }
  ~AgentProcess() { stop(SIGKILL); }
  AgentProcess(const AgentProcess&) = delete;
  AgentProcess& operator=(const AgentProcess&) = delete;

  bool alive() { return pid_ > 0 && ::waitpid(pid_, &status_, WNOHANG) == 0; }
  // Sends sig and waits; the exit code (128+signal when killed), -1 when not running.
  int stop(int sig = SIGTERM) {
    if (pid_ <= 0) return -1;
    ::kill(pid_, sig);
    ::waitpid(pid_, &status_, 0);
    pid_ = -1;
    return WIFEXITED(status_) ? WEXITSTATUS(status_) : 128 + WTERMSIG(status_);
  }
  // Waits for exit; the exit code, or -1 on timeout.
  int wait_exit(std::chrono::milliseconds timeout) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
      if (pid_ > 0 && ::waitpid(pid_, &status_, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status_) ? WEXITSTATUS(status_) : 128 + WTERMSIG(status_);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return -1;
  }
  std::string log() const { return slurp(out_) + slurp(out_ + ".err"); }
  // The port of "metrics on http://127.0.0.1:PORT/metrics" in the log, once it is there.
  std::optional<uint16_t> metrics_port() const {
    std::smatch m;
    const std::string l = log();
    if (std::regex_search(l, m, std::regex(R"(metrics on http://[^:]+:(\d+)/metrics)")))
      return static_cast<uint16_t>(std::stoi(m[1]));
    return std::nullopt;
  }
  static std::string slurp(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

 private:
  std::string out_;
  pid_t pid_ = -1;
  int status_ = 0;
};

struct HttpReply {
  int status = 0;
  std::string body;
};

// A minimal HTTP/1.0 GET over a plain socket, independent of the server's library.
inline std::optional<HttpReply> http_get(uint16_t port, const std::string& target) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::nullopt;
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return std::nullopt;
  }
  const std::string req = "GET " + target + " HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    ::close(fd);
    return std::nullopt;
  }
  std::string raw;
  char buf[4096];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) raw.append(buf, static_cast<size_t>(n));
  ::close(fd);
  const size_t sep = raw.find("\r\n\r\n");
  if (raw.rfind("HTTP/1.", 0) != 0 || sep == std::string::npos) return std::nullopt;
  return HttpReply{std::stoi(raw.substr(9, 3)), raw.substr(sep + 4)};
}

// The value of one sample line "name{labels} value" in a Prometheus exposition.
inline std::optional<double> metric_value(const std::string& exposition, const std::string& series) {
  std::istringstream in(exposition);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  return std::nullopt;
}

}  // namespace morph::test
