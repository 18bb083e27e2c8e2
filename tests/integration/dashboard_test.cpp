// The operator's live views against real daemons: `morph-controller run` and `morph-agent run
// --synthetic-vms 3` as processes on ipc:// sockets in a temp dir. The controller serves the dashboard itself
// (dashboard.listen, port 0: it prints "dashboard URL"); that page is loaded in headless Chromium and its DOM
// checked (host, the three VM names, KPI charts with data points; after a morphctl bid, the allocation, bid
// outcome, shift and price and allocation charts); a screenshot is left in the build dir as
// evidence. The same over tcp with CURVE (the controller's in-process dashboard authenticates with its own
// generated key), a port clash on dashboard.listen (a start-up error naming the key), start_dashboard() as a
// library, morph-dashboard as its own process, and `morphctl top --count 2` (run_top) printing the three VMs
// with numbers. Needs Debian's chromium for the browser part.
#include "controller/dashboard/dashboard.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <regex>
#include <sstream>
#include <thread>

#include "controller/cli/top.h"
#include "tests/integration/msg_support.h"
#include "tests/support/daemons.h"
#include "tests/support/files.h"
#include "tests/support/http.h"
#include "tests/support/process.h"
#include "tests/support/requirements.h"

namespace morph {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

using Child = test::ChildProcess;  // stdout/stderr in files; SIGTERM, then SIGKILL, when it goes out of scope
using test::slurp;
using test::wait_until;

// Runs a command to completion with a timeout; returns its stdout, its exit status in *status (-1: timed out).
std::string run_capture(const std::vector<std::string>& argv, const fs::path& out, std::chrono::seconds timeout,
                        int* status) {
  auto r = test::run_to_end(argv, out, timeout);
  *status = r.rc;
  return r.out;
}

// A plain HTTP/1.0 request to http://127.0.0.1:PORT/PATH; the whole response (status line, headers, body), empty
// when there is none.
std::string http_get(const std::string& url, const std::string& path, const std::string& method = "GET") {
  auto r = test::http_request(test::port_of(url), method, path);
  return r ? r->whole() : std::string();
}

// The "dashboard http://HOST:PORT" line a controller (or morph-dashboard) prints on stdout once it serves.
std::string printed_url(const fs::path& out) {
  return test::printed_dashboard_url(slurp(out));
}

// Whether /healthz at `url` answers 200 "ok" within 10 s; the last answer in *health.
bool healthy_within_10s(const std::string& url, std::string* health) {
  return wait_until(
      [&] {
        *health = http_get(url, "/healthz");
        return health->starts_with("HTTP/1.1 200") && health->ends_with("\r\n\r\nok\n");
      },
      10s);
}

// GET /api/state over real HTTP, parsed; null when it does not answer 200 with JSON.
nlohmann::json state_of(const std::string& url) {
  auto resp = http_get(url, "/api/state?points=20");
  auto body = resp.find("\r\n\r\n");
  if (!resp.starts_with("HTTP/1.1 200") || body == std::string::npos) return nullptr;
  return nlohmann::json::parse(resp.substr(body + 4), nullptr, false);
}

// Hosts named in the state and VMs with at least `samples` KPI samples.
bool has_vms_with_kpis(const nlohmann::json& j, const std::string& host, size_t vms, size_t samples) {
  if (!j.is_object() || !j.contains("hosts") || !j.contains("vms")) return false;
  bool host_up = false;
  for (auto& h : j["hosts"]) host_up |= h.value("host", "") == host && h.value("up", false);
  size_t ready = 0;
  for (auto& v : j["vms"]) ready += v.value("host", "") == host && v["kpis"]["t"].size() >= samples;
  return host_up && ready >= vms;
}

std::vector<std::string> chromium_argv(const fs::path& profile) {
  return {"/usr/bin/chromium",
          "--headless",
          "--no-sandbox",
          "--disable-gpu",
          "--disable-quic",
          "--no-first-run",
          "--disable-background-networking",
          "--disable-component-update",
          "--disable-sync",
          "--user-data-dir=" + profile.string(),
          "--virtual-time-budget=5000",
          "--window-size=1400,1100",
          "--hide-scrollbars"};
}

class Dashboard : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(tmp.ok());
    std::string controller = test::program("controller/morph-controller");
    std::string agent = test::program("hostagent/morph-agent");
    for (auto& b : {controller, agent})
      if (access(b.c_str(), X_OK) != 0) GTEST_FAIL() << b << " is not built";
    ctl = std::make_unique<Child>(
        std::vector<std::string>{controller, "run", "--ipc-dir", ipc.string(), "--ledger", (dir / "ledger.db").string(),
                                 "--metrics-listen", "", "--dashboard-listen", "127.0.0.1:0"},
        dir / "controller.out");
    ASSERT_TRUE(wait_until([&] { return !(url = printed_url(dir / "controller.out")).empty(); }, 10s))
        << slurp(dir / "controller.out") << slurp(dir / "controller.out.err");
    agt = std::make_unique<Child>(test::synthetic_agent_argv(ipc, 3), dir / "agent.out");
  }
  void TearDown() override {
    agt.reset();
    ctl.reset();
    tmp.keep(HasFailure());
  }

  test::TempDir tmp{"dashboard-test"};
  fs::path dir = tmp.path(), ipc = dir / "ipc";
  std::string url;  // the controller's own dashboard
  std::unique_ptr<Child> ctl, agt;
};

const char* kVms[] = {"host-a-synthetic-vm0", "host-a-synthetic-vm1", "host-a-synthetic-vm2"};

TEST_F(Dashboard, PageInHeadlessChromiumShowsHostsVmsKpiChartsAndTheMarket) {
  MORPH_REQUIRE(access("/usr/bin/chromium", X_OK) == 0 ? std::string()
                                                       : std::string("needs Debian's chromium (scripts/setup-deps)"));
  // The controller's own dashboard (dashboard.listen), fed by the controller itself: enough history for a
  // line, 3 VMs with at least 5 samples each.
  nlohmann::json st;
  ASSERT_TRUE(wait_until([&] { return has_vms_with_kpis(st = state_of(url), "host-a", 3, 5); }, 15s))
      << "no KPIs reached the controller's dashboard at " << url << ": " << st.dump().substr(0, 400)
      << "\nagent: " << slurp(dir / "agent.out.err");
  // The market part: a tenant buys CPU for vm0 through morphctl, so the page has an allocation, prices over
  // time, a shift and a bid outcome to show.
  std::string vm0;
  for (auto& v : st["vms"])
    if (v["name"] == kVms[0]) vm0 = v["uuid"];
  ASSERT_FALSE(vm0.empty()) << st.dump().substr(0, 400);
  std::string morphctl = test::program("controller/cli/morphctl"), api = "ipc://" + (ipc / "api").string();
  int rc = 0;
  for (auto args : std::vector<std::vector<std::string>>{
           {"accounts", "create", "demo"},
           {"accounts", "deposit", "demo", "100000000"},
           {"bids", "submit", "--account", "demo", "--vm", vm0, "--quantity", "700", "--max-price", "10", "--json"}}) {
    args.insert(args.begin(), {morphctl, "--connect", api});
    auto out = run_capture(args, dir / "morphctl.out", 20s, &rc);
    ASSERT_EQ(rc, 0) << out << slurp(dir / "morphctl.out.err");
  }
  uint64_t bid = nlohmann::json::parse(slurp(dir / "morphctl.out"))["bid_id"];
  ASSERT_TRUE(wait_until(
      [&] {
        st = state_of(url);
        if (!st.is_object() || st["allocations"].empty() || st["shifts"].empty() || st["bids"].empty()) return false;
        for (auto& p : st["prices"])
          if (p["t"].size() >= 2) return true;
        return false;
      },
      20s))
      << "no allocation, shift, bid outcome or price history on the dashboard: " << st.dump().substr(0, 600);

  auto argv = chromium_argv(dir / "profile");
  argv.push_back("--dump-dom");
  argv.push_back(url + "/");
  int status = 0;
  std::string dom = run_capture(argv, dir / "dom.html", 90s, &status);
  ASSERT_EQ(status, 0) << slurp(dir / "dom.html.err");
  EXPECT_NE(dom.find("<td>host-a</td>"), std::string::npos) << dom;
  for (auto* vm : kVms) EXPECT_NE(dom.find(std::string("<td>") + vm + "</td>"), std::string::npos) << vm;
  // The charts drew points: data-points on the CPU and run-queue canvases, ≥ 3 VMs × 5 samples.
  for (auto* id : {"chart-cpu", "chart-runq"}) {
    std::smatch m;
    std::regex re(std::string("id=\"") + id + "\"[^>]*data-points=\"([0-9]+)\"|data-points=\"([0-9]+)\"[^>]*id=\"" +
                  id + "\"");
    ASSERT_TRUE(std::regex_search(dom, m, re)) << id << " has no data-points attribute";
    long n = std::stol(m[1].matched ? m[1].str() : m[2].str());
    EXPECT_GE(n, 15) << id;
  }
  // The status line was filled in from /api/state (not "connecting…" nor an error).
  auto status_at = dom.find("id=\"status\">");
  ASSERT_NE(status_at, std::string::npos);
  EXPECT_EQ(dom.compare(status_at + 12, 22, "controller incarnation"), 0) << dom.substr(status_at, 120);
  // Market: the allocation in force (bid, VM, account, resource), the bid's outcome, the shift sent for it,
  // and prices and the CPU bought drawn over time.
  std::string b = "<td class=\"n\">" + std::to_string(bid) + "</td><td>" + kVms[0] + "</td>";
  EXPECT_NE(dom.find(b + "<td>demo</td><td>cpu</td><td class=\"n\">700</td>"), std::string::npos)
      << "allocation row missing: " << b;
  EXPECT_NE(dom.find(b + "<td>cpu</td><td>filled"), std::string::npos) << "bid outcome row missing: " << b;
  auto shifts_at = dom.find("id=\"shifts\"");
  ASSERT_NE(shifts_at, std::string::npos);
  auto shifts = dom.substr(shifts_at, dom.find("</table>", shifts_at) - shifts_at);
  EXPECT_NE(shifts.find(std::string("<td>") + kVms[0] + "</td>"), std::string::npos) << shifts;
  EXPECT_NE(shifts.find("cpu="), std::string::npos) << "the shift's settings: " << shifts;
  for (auto [id, min] : {std::pair{"chart-price", 2}, std::pair{"chart-alloc", 1}}) {
    std::smatch m;
    std::regex re(std::string("id=\"") + id + "\"[^>]*data-points=\"([0-9]+)\"|data-points=\"([0-9]+)\"[^>]*id=\"" +
                  id + "\"");
    ASSERT_TRUE(std::regex_search(dom, m, re)) << id << " has no data-points attribute";
    EXPECT_GE(std::stol(m[1].matched ? m[1].str() : m[2].str()), min) << id;
  }

  // Evidence for a human: a screenshot next to the test binary.
  fs::path shot = fs::path(test::binary_dir()) / "tests/integration/dashboard_screenshot.png";
  argv = chromium_argv(dir / "profile2");
  argv.push_back("--screenshot=" + shot.string());
  argv.push_back(url + "/");
  run_capture(argv, dir / "shot.out", 90s, &status);
  ASSERT_EQ(status, 0) << slurp(dir / "shot.out.err");
  ASSERT_TRUE(fs::exists(shot));
  EXPECT_GT(fs::file_size(shot), 20000u) << "a page with tables and charts is more than a blank PNG";
  std::printf("dashboard screenshot: %s\n", shot.c_str());
}

TEST_F(Dashboard, StateJsonCarriesKpiHistoryPerVm) {
  auto d = dashboard::start_dashboard({fleet::ipc_options(ipc.string()), "127.0.0.1:0"});
  ASSERT_TRUE(d) << d.error().describe();
  ASSERT_TRUE((*d)->fleet().wait_for(
      [](const fleet::FleetState& s) { return s.vms.size() == 3 && s.vms.begin()->second.kpis.size() >= 4; }, 15s));
  auto j = dashboard::state_json((*d)->fleet().state(), 3);
  ASSERT_EQ(j["vms"].size(), 3u);
  for (auto& vm : j["vms"]) {
    EXPECT_EQ(vm["host"], "host-a");
    EXPECT_EQ(vm["kpis"]["t"].size(), 3u) << "points=3 caps every series";
    EXPECT_GT(vm["latest"]["cpu_pct"].get<double>(), 0.0);
  }
  ASSERT_EQ(j["hosts"].size(), 1u);
  EXPECT_TRUE(j["hosts"][0]["up"].get<bool>());
}

TEST_F(Dashboard, TopCountTwoPrintsTheSyntheticVmsWithNumbers) {
  std::ostringstream out;
  cli::TopOptions o;
  o.controller.ipc_dir = ipc.string();
  o.count = 2;
  o.interval = 300ms;
  o.wait = 15s;
  o.out = &out;
  ASSERT_EQ(cli::run_top(o), 0);
  std::string text = out.str();
  EXPECT_EQ(text.find('\x1b'), std::string::npos) << "plain text when not a terminal";
  size_t frames = 0;
  for (size_t p = 0; (p = text.find("morph top", p)) != std::string::npos; ++p) ++frames;
  EXPECT_EQ(frames, 2u) << text;
  // Every VM row carries a CPU % and a run-queue wait % as numbers.
  for (auto* vm : kVms) {
    // VM, host, owner (empty until the controller describes the VM), CPU %, wait %, disk read rate.
    std::regex row(std::string(vm) + R"(\s+host-a\s+(\S+\s+)?[0-9]+\.[0-9]\s+[0-9]+\.[0-9]\s+[0-9.]+ \S+/s)");
    EXPECT_TRUE(std::regex_search(text, row)) << vm << " row missing or without numbers in:\n" << text;
  }
  std::printf("%s", text.c_str());
}

TEST_F(Dashboard, MorphDashboardProcessServesHealthz) {
  std::string bin = test::program("controller/dashboard/morph-dashboard");
  ASSERT_EQ(access(bin.c_str(), X_OK), 0) << bin << " is not built";
  Child db({bin, "--ipc-dir", ipc.string(), "--listen", "127.0.0.1:0"}, dir / "dashboard.out");
  std::string db_url;  // morph-dashboard's own, beside the controller's
  ASSERT_TRUE(wait_until([&] { return !(db_url = printed_url(dir / "dashboard.out")).empty(); }, 10s))
      << slurp(dir / "dashboard.out.err");
  EXPECT_NE(db_url, url);
  // Page and state over real HTTP, through Chromium's network stack, are covered above; here the process
  // must come up, say where it serves, and become healthy once the controller's data arrives.
  std::string health;
  ASSERT_TRUE(healthy_within_10s(db_url, &health)) << health;
  auto page = http_get(db_url, "/");
  EXPECT_NE(page.find("<title>Morph dashboard</title>"), std::string::npos);
  EXPECT_EQ(page.find("<script src="), std::string::npos) << "the page must be self-contained";
  EXPECT_TRUE(db.alive());
}

TEST_F(Dashboard, ControllerDashboardAnswersHealthzAndPage) {
  std::string health;
  ASSERT_TRUE(healthy_within_10s(url, &health)) << health;
  auto page = http_get(url, "/");
  EXPECT_NE(page.find("<title>Morph dashboard</title>"), std::string::npos);
  auto bad = http_get(url, "/api/state?points=x");
  EXPECT_TRUE(bad.starts_with("HTTP/1.1 400") && bad.find("points: expected a whole number") != std::string::npos)
      << bad;
  // Read-only: nothing but GET is served.
  for (auto* m : {"POST", "PUT", "DELETE"}) {
    auto r = http_get(url, "/api/state", m);
    EXPECT_TRUE(r.starts_with("HTTP/1.1 4")) << m << ": " << r.substr(0, 80);
  }
  EXPECT_TRUE(ctl->alive());
}

// The controller on tcp with CURVE: every client needs a key in the allow-list. The in-process dashboard uses
// a key pair the controller generates at start (never written anywhere), so with only the agent in the
// allow-list the dashboard still shows the host and its VMs.
TEST(DashboardCurve, ControllerOnTcpWithCurveServesItsDashboard) {
  test::KeySet keys;
  std::string controller = test::program("controller/morph-controller");
  std::string agent = test::program("hostagent/morph-agent");
  auto ep = [] { return "tcp://127.0.0.1:" + std::to_string(test::free_port()); };
  std::string ingest = ep(), control = ep(), api = ep(), events = ep();
  fs::path out = keys.dir / "controller.out";
  Child ctl({controller,
             "run",
             "--key",
             keys.path("controller.key"),
             "--allow",
             keys.path("allow"),
             "--ingest",
             ingest,
             "--control",
             control,
             "--api",
             api,
             "--events",
             events,
             "--ledger",
             keys.path("ledger.db"),
             "--metrics-listen",
             "",
             "--dashboard-listen",
             "127.0.0.1:0"},
            out);
  std::string url;
  ASSERT_TRUE(wait_until([&] { return !(url = printed_url(out)).empty(); }, 10s))
      << slurp(out) << slurp(out.string() + ".err");
  EXPECT_NE(slurp(out.string() + ".err").find("CURVE on"), std::string::npos) << "the endpoints must be on CURVE";
  Child agt({agent,
             "run",
             "--host",
             "host-a",
             "--ingest",
             ingest,
             "--control",
             control,
             "--key",
             keys.path("host-a.key"),
             "--server-key",
             keys.path("controller.pub"),
             "--interval-ms",
             "200",
             "--synthetic-vms",
             "3",
             "--metrics-listen",
             "",
             "--lease-state-file",
             ""},
            keys.dir / "agent.out");
  nlohmann::json st;
  ASSERT_TRUE(wait_until([&] { return has_vms_with_kpis(st = state_of(url), "host-a", 3, 3); }, 20s))
      << "the in-process dashboard saw no KPIs over CURVE: " << st.dump().substr(0, 400)
      << "\ncontroller: " << slurp(out.string() + ".err") << "\nagent: " << slurp(keys.dir / "agent.out.err");
  EXPECT_GE(st["snapshots"].get<uint64_t>(), 1u) << "the api endpoint answered the dashboard's snapshot request";
  EXPECT_EQ(st["error"], "");
  EXPECT_TRUE(ctl.alive());
}

// A port already taken on dashboard.listen stops the start with exit status 2 and an error naming the key.
TEST(DashboardCurve, PortClashOnDashboardListenIsAStartUpErrorNamingTheKey) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  std::string taken = "127.0.0.1:" + std::to_string(ntohs(a.sin_port));

  test::TempDir tmp("dashboard-clash");
  ASSERT_TRUE(tmp.ok());
  const fs::path& dir = tmp.path();
  int status = -1;
  std::string out =
      run_capture({test::program("controller/morph-controller"), "run", "--ipc-dir", (dir / "ipc").string(), "--ledger",
                   (dir / "ledger.db").string(), "--metrics-listen", "", "--dashboard-listen", taken},
                  dir / "controller.out", 20s, &status);
  std::string err = slurp(dir / "controller.out.err");
  ::close(fd);
  EXPECT_EQ(status, 2) << err;
  EXPECT_NE(err.find("dashboard.listen"), std::string::npos) << err;
  EXPECT_NE(err.find(taken), std::string::npos) << err;
  EXPECT_NE(err.find("in use"), std::string::npos) << err;
  EXPECT_EQ(out.find("dashboard http"), std::string::npos) << "no URL printed for a dashboard that did not start";
  tmp.keep(HasFailure());
}

// On a non-loopback address the dashboard still serves, and the controller warns that it is open to anyone.
TEST(DashboardCurve, NonLoopbackListenIsServedWithAWarning) {
  test::TempDir tmp("dashboard-any");
  ASSERT_TRUE(tmp.ok());
  const fs::path& dir = tmp.path();
  fs::path out = dir / "controller.out";
  std::string url;
  {
    Child ctl({test::program("controller/morph-controller"), "run", "--ipc-dir", (dir / "ipc").string(), "--ledger",
               (dir / "ledger.db").string(), "--metrics-listen", "", "--dashboard-listen", "0.0.0.0:0"},
              out);
    ASSERT_TRUE(wait_until([&] { return !(url = printed_url(out)).empty(); }, 10s)) << slurp(out.string() + ".err");
    EXPECT_TRUE(url.starts_with("http://127.0.0.1:")) << url;
    EXPECT_TRUE(http_get(url, "/").starts_with("HTTP/1.1 200"));
  }
  std::string err = slurp(out.string() + ".err");
  EXPECT_NE(err.find("dashboard.listen 0.0.0.0:0 is not a loopback address"), std::string::npos) << err;
  tmp.keep(HasFailure());
}

}  // namespace
}  // namespace morph
