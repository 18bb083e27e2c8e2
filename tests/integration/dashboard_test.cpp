// The operator's live views against real daemons: `morph-controller run` and `morph-agent run
// --synthetic-vms 3` as processes on ipc:// sockets in a temp dir, the dashboard started in-process
// (start_dashboard), its page loaded in headless Chromium and its DOM checked (host, the three VM names,
// KPI charts with data points); a screenshot is left in the build dir as evidence. `morphctl top --count 2`
// (run_top) must print the three VMs with numbers. Needs Debian's chromium for the browser part.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "controller/cli/top.h"
#include "controller/dashboard/dashboard.h"
#include "tests/support/requirements.h"

extern char** environ;

namespace morph {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return pred();
}

// A child process with stdout/stderr in files; killed (SIGTERM, then SIGKILL) when it goes out of scope.
class Child {
 public:
  Child(std::vector<std::string> argv, const fs::path& out) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&fa, 2, (out.string() + ".err").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    if (posix_spawn(&pid_, args[0], &fa, nullptr, args.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&fa);
  }
  ~Child() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 40; ++i) {
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) return;
      std::this_thread::sleep_for(50ms);
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  bool alive() { return pid_ > 0 && ::waitpid(pid_, nullptr, WNOHANG) == 0; }

 private:
  pid_t pid_ = -1;
};

// Runs a command to completion with a timeout; returns its stdout.
std::string run_capture(std::vector<std::string> argv, const fs::path& out, std::chrono::seconds timeout, int* status) {
  pid_t pid;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&fa, 2, (out.string() + ".err").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  *status = -1;
  if (posix_spawn(&pid, args[0], &fa, nullptr, args.data(), environ) != 0) return "";
  posix_spawn_file_actions_destroy(&fa);
  int st = 0;
  auto end = std::chrono::steady_clock::now() + timeout;
  while (::waitpid(pid, &st, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > end) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &st, 0);
      return slurp(out);
    }
    std::this_thread::sleep_for(50ms);
  }
  *status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return slurp(out);
}

// A plain HTTP/1.0 GET to http://127.0.0.1:PORT/PATH; the whole response (status line, headers, body).
std::string http_get(const std::string& url, const std::string& path) {
  auto colon = url.rfind(':');
  int port = std::stoi(url.substr(colon + 1));
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string resp;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    std::string req = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (::write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size())) {
      char buf[4096];
      for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) resp.append(buf, static_cast<size_t>(n));
    }
  }
  ::close(fd);
  return resp;
}

std::vector<std::string> chromium_argv(const fs::path& profile) {
  return {"/usr/bin/chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
          "--disable-background-networking", "--disable-component-update", "--disable-sync",
          "--user-data-dir=" + profile.string(), "--virtual-time-budget=5000", "--window-size=1400,1100",
          "--hide-scrollbars"};
}

class Dashboard : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/morph-dashboard-test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir = tmpl;
    ipc = dir / "ipc";
    std::string controller = test::binary_dir() + "/controller/morph-controller";
    std::string agent = test::binary_dir() + "/hostagent/morph-agent";
    for (auto& b : {controller, agent})
      if (access(b.c_str(), X_OK) != 0) GTEST_FAIL() << b << " is not built";
    ctl = std::make_unique<Child>(std::vector<std::string>{controller, "run", "--ipc-dir", ipc.string(), "--ledger",
                                                           (dir / "ledger.db").string(), "--metrics-listen", ""},
                                  dir / "controller.out");
    ASSERT_TRUE(wait_until([&] { return slurp(dir / "controller.out").find("events ") != std::string::npos; }, 10s))
        << slurp(dir / "controller.out.err");
    agt = std::make_unique<Child>(
        std::vector<std::string>{agent, "run", "--host", "host-a", "--ingest", "ipc://" + (ipc / "ingest").string(),
                                 "--control", "ipc://" + (ipc / "control").string(), "--interval-ms", "200",
                                 "--synthetic-vms", "3", "--metrics-listen", "", "--lease-state-file", ""},
        dir / "agent.out");
  }
  void TearDown() override {
    agt.reset();
    ctl.reset();
    std::error_code ec;
    if (!HasFailure()) fs::remove_all(dir, ec);
  }

  fs::path dir, ipc;
  std::unique_ptr<Child> ctl, agt;
};

const char* kVms[] = {"host-a-synthetic-vm0", "host-a-synthetic-vm1", "host-a-synthetic-vm2"};

TEST_F(Dashboard, PageInHeadlessChromiumShowsHostVmsAndKpiCharts) {
  MORPH_REQUIRE(access("/usr/bin/chromium", X_OK) == 0 ? std::string()
                                                       : std::string("needs Debian's chromium (scripts/setup-deps)"));
  auto d = dashboard::start_dashboard({fleet::ipc_options(ipc.string()), "127.0.0.1:0"});
  ASSERT_TRUE(d) << d.error().describe();
  // Enough history for a line: 3 VMs with at least 5 samples each.
  ASSERT_TRUE((*d)->fleet().wait_for(
      [](const fleet::FleetState& s) {
        size_t ready = 0;
        for (auto& [u, v] : s.vms) ready += v.kpis.size() >= 5;
        return ready == 3 && !s.hosts.empty();
      },
      15s))
      << "no KPIs reached the dashboard; agent: " << slurp(dir / "agent.out.err");

  auto argv = chromium_argv(dir / "profile");
  argv.push_back("--dump-dom");
  argv.push_back((*d)->url() + "/");
  int status = 0;
  std::string dom = run_capture(argv, dir / "dom.html", 90s, &status);
  ASSERT_EQ(status, 0) << slurp(dir / "dom.html.err");
  EXPECT_NE(dom.find("<td>host-a</td>"), std::string::npos) << dom;
  for (auto* vm : kVms) EXPECT_NE(dom.find(std::string("<td>") + vm + "</td>"), std::string::npos) << vm;
  // The charts drew points: data-points on the CPU and run-queue canvases, ≥ 3 VMs × 5 samples.
  for (auto* id : {"chart-cpu", "chart-runq"}) {
    std::smatch m;
    std::regex re(std::string("id=\"") + id + "\"[^>]*data-points=\"([0-9]+)\"|data-points=\"([0-9]+)\"[^>]*id=\"" + id + "\"");
    ASSERT_TRUE(std::regex_search(dom, m, re)) << id << " has no data-points attribute";
    long n = std::stol(m[1].matched ? m[1].str() : m[2].str());
    EXPECT_GE(n, 15) << id;
  }
  // The status line was filled in from /api/state (not "connecting…" nor an error).
  auto status_at = dom.find("id=\"status\">");
  ASSERT_NE(status_at, std::string::npos);
  EXPECT_EQ(dom.compare(status_at + 12, 22, "controller incarnation"), 0) << dom.substr(status_at, 120);

  // Evidence for a human: a screenshot next to the test binary.
  fs::path shot = fs::path(test::binary_dir()) / "tests/integration/dashboard_screenshot.png";
  argv = chromium_argv(dir / "profile2");
  argv.push_back("--screenshot=" + shot.string());
  argv.push_back((*d)->url() + "/");
  run_capture(argv, dir / "shot.out", 90s, &status);
  ASSERT_EQ(status, 0) << slurp(dir / "shot.out.err");
  ASSERT_TRUE(fs::exists(shot));
  EXPECT_GT(fs::file_size(shot), 20000u) << "a page with tables and charts is more than a blank PNG";
  std::printf("dashboard screenshot: %s\n", shot.c_str());
}

TEST_F(Dashboard, StateJsonCarriesKpiHistoryPerVm) {
  auto d = dashboard::start_dashboard({fleet::ipc_options(ipc.string()), "127.0.0.1:0"});
  ASSERT_TRUE(d) << d.error().describe();
  ASSERT_TRUE((*d)->fleet().wait_for([](const fleet::FleetState& s) { return s.vms.size() == 3 && s.vms.begin()->second.kpis.size() >= 4; }, 15s));
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
  std::string bin = test::binary_dir() + "/controller/dashboard/morph-dashboard";
  ASSERT_EQ(access(bin.c_str(), X_OK), 0) << bin << " is not built";
  Child db({bin, "--ipc-dir", ipc.string(), "--listen", "127.0.0.1:0"}, dir / "dashboard.out");
  std::string url;
  ASSERT_TRUE(wait_until([&] {
    auto s = slurp(dir / "dashboard.out");
    if (s.rfind("dashboard ", 0) != 0) return false;
    url = s.substr(10, s.find('\n') - 10);
    return true;
  }, 10s)) << slurp(dir / "dashboard.out.err");
  // Page and state over real HTTP, through Chromium's network stack, are covered above; here the process
  // must come up, say where it serves, and become healthy once the controller's data arrives.
  std::string health;
  ASSERT_TRUE(wait_until([&] {
    health = http_get(url, "/healthz");
    return health.starts_with("HTTP/1.1 200") && health.ends_with("\r\n\r\nok\n");
  }, 10s)) << health;
  auto page = http_get(url, "/");
  EXPECT_NE(page.find("<title>Morph dashboard</title>"), std::string::npos);
  EXPECT_EQ(page.find("<script src="), std::string::npos) << "the page must be self-contained";
  EXPECT_TRUE(db.alive());
}

}  // namespace
}  // namespace morph
