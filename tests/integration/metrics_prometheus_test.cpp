// The metrics endpoint as Prometheus sees it: a real /usr/bin/prometheus scrapes a process-local
// MetricsServer every second, and the values come back through Prometheus' HTTP query API.

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "common/metrics.h"
#include "tests/support/files.h"
#include "tests/support/http.h"
#include "tests/support/process.h"
#include "tests/support/requirements.h"

namespace morph::metrics {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

const char* kPrometheus = "/usr/bin/prometheus";

using test::http_get;

// A Prometheus server in a temporary directory; killed and cleaned up whatever happens to the test.
class PrometheusProcess {
 public:
  explicit PrometheusProcess(uint16_t target_port) {
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
    process_ = std::make_unique<test::ChildProcess>(
        std::vector<std::string>{kPrometheus, "--config.file=" + (dir_ / "prometheus.yml").string(),
                                 "--storage.tsdb.path=" + (dir_ / "data").string(),
                                 "--web.listen-address=127.0.0.1:" + std::to_string(port_), "--log.level=info"},
        dir_ / "prometheus.log", test::ChildOptions{.merge_stderr = true, .own_group = true, .grace = 5s});
  }

  uint16_t port() const { return port_; }
  bool running() const { return process_->alive(); }
  std::string log_tail() const {
    std::string s = test::slurp(dir_ / "prometheus.log");
    return s.size() > 2000 ? s.substr(s.size() - 2000) : s;
  }

  // The value of an instant query's first sample, or nullopt while there is none.
  std::optional<std::string> query(const std::string& promql) const {
    auto r = http_get(port_, "/api/v1/query?query=" + test::url_encode(promql));
    if (!r || r->status != 200) return std::nullopt;
    auto j = nlohmann::json::parse(r->body, nullptr, false);
    if (j.is_discarded() || j.value("status", "") != "success") return std::nullopt;
    const auto& result = j["data"]["result"];
    if (!result.is_array() || result.empty()) return std::nullopt;
    return result[0]["value"][1].get<std::string>();
  }

 private:
  test::TempDir dir_{"prometheus"};
  uint16_t port_ = test::free_port();
  std::unique_ptr<test::ChildProcess> process_;  // declared last: stopped before the directory goes
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
