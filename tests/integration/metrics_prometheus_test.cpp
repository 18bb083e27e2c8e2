// The metrics endpoint as Prometheus sees it: a real /usr/bin/prometheus scrapes a process-local
// MetricsServer every second, and the values come back through Prometheus' HTTP query API.

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <thread>

#include "common/metrics.h"
#include "tests/support/requirements.h"

namespace morph::metrics {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

const char* kPrometheus = "/usr/bin/prometheus";

struct HttpReply {
  int status = 0;
  std::string headers, body;
};

// A minimal HTTP/1.0 GET over a plain socket: enough for a test, and independent of the server's library.
std::optional<HttpReply> http_get(uint16_t port, const std::string& target) {
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
  std::string req = "GET " + target + " HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    ::close(fd);
    return std::nullopt;
  }
  std::string raw;
  char buf[4096];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) raw.append(buf, static_cast<size_t>(n));
  ::close(fd);
  size_t sep = raw.find("\r\n\r\n");
  if (raw.rfind("HTTP/1.", 0) != 0 || sep == std::string::npos) return std::nullopt;
  HttpReply r;
  r.status = std::stoi(raw.substr(9, 3));
  r.headers = raw.substr(0, sep);
  r.body = raw.substr(sep + 4);
  return r;
}

std::string url_encode(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (isalnum(c) || c == '_' || c == '-' || c == '.') {
      out += static_cast<char>(c);
    } else {
      char b[4];
      std::snprintf(b, sizeof b, "%%%02X", c);
      out += b;
    }
  }
  return out;
}

uint16_t free_loopback_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

// A Prometheus server in a temporary directory; killed and cleaned up whatever happens to the test.
class PrometheusProcess {
 public:
  PrometheusProcess(uint16_t target_port) {
    char tmpl[] = "/tmp/morph-prometheus-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    port_ = free_loopback_port();
    std::ofstream(dir_ / "prometheus.yml") << "global:\n"
                                              "  scrape_interval: 1s\n"
                                              "  evaluation_interval: 1s\n"
                                              "scrape_configs:\n"
                                              "  - job_name: morph\n"
                                              "    scrape_interval: 1s\n"
                                              "    scrape_timeout: 1s\n"
                                              "    static_configs:\n"
                                              "      - targets: ['127.0.0.1:"
                                           << target_port << "']\n";
    std::string config = "--config.file=" + (dir_ / "prometheus.yml").string();
    std::string data = "--storage.tsdb.path=" + (dir_ / "data").string();
    std::string listen = "--web.listen-address=127.0.0.1:" + std::to_string(port_);
    std::string log = (dir_ / "prometheus.log").string();
    pid_ = ::fork();
    if (pid_ == 0) {
      ::setpgid(0, 0);
      int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(out, 1);
      ::dup2(out, 2);
      ::execl(kPrometheus, kPrometheus, config.c_str(), data.c_str(), listen.c_str(), "--log.level=info",
              static_cast<char*>(nullptr));
      ::_exit(127);
    }
  }
  ~PrometheusProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status = 0;
      bool gone = false;
      for (int i = 0; i < 100 && !gone; ++i) {
        gone = ::waitpid(pid_, &status, WNOHANG) == pid_;
        if (!gone) std::this_thread::sleep_for(50ms);
      }
      if (!gone) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
      }
    }
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  PrometheusProcess(const PrometheusProcess&) = delete;
  PrometheusProcess& operator=(const PrometheusProcess&) = delete;

  uint16_t port() const { return port_; }
  bool running() const { return pid_ > 0 && ::waitpid(pid_, nullptr, WNOHANG) == 0; }
  std::string log_tail() const {
    std::ifstream in(dir_ / "prometheus.log");
    std::stringstream ss;
    ss << in.rdbuf();
    std::string s = ss.str();
    return s.size() > 2000 ? s.substr(s.size() - 2000) : s;
  }

  // The value of an instant query's first sample, or nullopt while there is none.
  std::optional<std::string> query(const std::string& promql) const {
    auto r = http_get(port_, "/api/v1/query?query=" + url_encode(promql));
    if (!r || r->status != 200) return std::nullopt;
    auto j = nlohmann::json::parse(r->body, nullptr, false);
    if (j.is_discarded() || j.value("status", "") != "success") return std::nullopt;
    const auto& result = j["data"]["result"];
    if (!result.is_array() || result.empty()) return std::nullopt;
    return result[0]["value"][1].get<std::string>();
  }

 private:
  fs::path dir_;
  uint16_t port_ = 0;
  pid_t pid_ = -1;
};

TEST(MetricsServer, ServesMetricsAndHealth) {
  Registry r;
  r.gauge("morph_vm_cpu_run_seconds", "CPU.", {"vm"}).with({"t1"})->set(1.5);
  bool healthy = true;
  auto s = MetricsServer::start(r, "127.0.0.1:0", [&]() -> Status {
    if (healthy) return {};
    return Error(Errc::unavailable, "libvirtd is gone");
  });
  ASSERT_TRUE(s.ok()) << s.error().what();
  uint16_t port = (*s)->port();
  ASSERT_NE(port, 0);

  auto m = http_get(port, "/metrics");
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->status, 200);
  EXPECT_NE(m->headers.find("text/plain; version=0.0.4"), std::string::npos) << m->headers;
  EXPECT_NE(m->body.find("morph_vm_cpu_run_seconds{vm=\"t1\"} 1.5\n"), std::string::npos) << m->body;

  auto h = http_get(port, "/healthz");
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(h->status, 200);
  healthy = false;
  h = http_get(port, "/healthz");
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(h->status, 503);
  EXPECT_NE(h->body.find("libvirtd is gone"), std::string::npos);

  // A second server cannot take the same port, and says which.
  auto dup = MetricsServer::start(r, "127.0.0.1:" + std::to_string(port));
  ASSERT_FALSE(dup.ok());
  EXPECT_NE(dup.error().what().find(std::to_string(port)), std::string::npos);

  // Stopping frees the port at once.
  s = Error(Errc::internal, "dropped");
  EXPECT_FALSE(http_get(port, "/metrics").has_value());
  auto again = MetricsServer::start(r, "127.0.0.1:" + std::to_string(port));
  EXPECT_TRUE(again.ok()) << again.error().what();
}

TEST(MetricsPrometheus, RealPrometheusScrapesAndAnswersQueries) {
  MORPH_REQUIRE(fs::exists(kPrometheus)
                    ? std::string()
                    : std::string(kPrometheus) + " is missing (scripts/setup-deps installs prometheus)");
  Registry r;
  auto cpu = r.gauge("morph_vm_cpu_run_seconds", "CPU time of the VM.", {"vm"}).with({"t1"});
  cpu->set(42.5);
  r.counter("morph_kpi_reports_total", "KPI reports published.").with({})->inc(7);
  r.histogram("morph_tick_seconds", "Tick duration.", {}, {0.1, 1}).with({})->observe(0.2);
  auto server = MetricsServer::start(r, "127.0.0.1:0");
  ASSERT_TRUE(server.ok()) << server.error().what();

  PrometheusProcess prom((*server)->port());
  // Prometheus needs a few seconds to start and scrape on a loaded 2-core machine.
  auto wait_for = [&](const std::string& q, const std::string& want, std::chrono::seconds limit) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    std::optional<std::string> last;
    while (std::chrono::steady_clock::now() < deadline) {
      if (!prom.running()) return "prometheus exited early; its log:\n" + prom.log_tail();
      last = prom.query(q);
      if (last == want) return std::string();
      std::this_thread::sleep_for(250ms);
    }
    return "query " + q + " gave " + (last ? *last : std::string("no sample")) + " instead of " + want + " within " +
           std::to_string(limit.count()) + " s; prometheus log:\n" + prom.log_tail();
  };
  std::string why = wait_for("morph_vm_cpu_run_seconds{vm=\"t1\"}", "42.5", 60s);
  ASSERT_TRUE(why.empty()) << why;
  EXPECT_EQ(wait_for("up{job=\"morph\"}", "1", 10s), "");
  EXPECT_EQ(wait_for("morph_kpi_reports_total", "7", 10s), "");
  EXPECT_EQ(wait_for("morph_tick_seconds_bucket{le=\"1\"}", "1", 10s), "");
  // A new value shows up at the next scrape.
  cpu->set(43);
  EXPECT_EQ(wait_for("morph_vm_cpu_run_seconds{vm=\"t1\"}", "43", 15s), "");
}

}  // namespace
}  // namespace morph::metrics
