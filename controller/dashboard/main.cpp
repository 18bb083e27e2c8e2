// morph-dashboard: the operator dashboard as its own process, for a controller that does not serve it
// in-process (dashboard.listen) or runs elsewhere. Prints "dashboard URL" on stdout once it serves.
#include <signal.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cstdio>

#include "common/log.h"
#include "controller/dashboard/dashboard.h"

int main(int argc, char** argv) {
  CLI::App app{"morph-dashboard: live web view of a Morph controller's events (hosts, VMs, KPIs, market)"};
  morph::fleet::ControllerAddress addr;
  // 9473: beside a controller serving its own dashboard on the default 9472 (dashboard.listen).
  std::string listen = "127.0.0.1:9473", level = "info";
  app.add_option("--api", addr.api, "controller api endpoint (default tcp://127.0.0.1:7712)");
  app.add_option("--events", addr.events, "controller events endpoint (default tcp://127.0.0.1:7713)");
  app.add_option("--ipc-dir", addr.ipc_dir, "the controller's --ipc-dir: use its ipc:// api and events sockets");
  app.add_option("--key", addr.key_file, "this client's secret key file (NAME.key), for tcp:// endpoints");
  app.add_option("--server-key", addr.server_key_file, "the controller's public key file (controller.pub)");
  app.add_option("--listen", listen, "HTTP address HOST:PORT (port 0: any free port)")->capture_default_str();
  app.add_option("--log-level", level, "trace, debug, info, warn, error")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    if (auto st = morph::log::init(level, "morph-dashboard"); !st) {
      spdlog::error("{}", st.error().what());
      return 2;
    }
    auto fo = morph::fleet::resolve(addr);
    if (!fo) {
      spdlog::error("{}", fo.error().what());
      return 2;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    auto d = morph::dashboard::start_dashboard({*fo, listen});
    if (!d) {
      spdlog::error("{}", d.error().what());
      return 1;
    }
    std::printf("dashboard %s\n", (*d)->url().c_str());
    std::fflush(stdout);
    int sig = 0;
    sigwait(&set, &sig);
    spdlog::info("stopping");
    return 0;
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    return 1;
  }
}
