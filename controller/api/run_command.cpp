#include "controller/api/run_command.h"

#include <signal.h>
#include <spdlog/spdlog.h>

#include <ctime>
#include <toml++/toml.h>

#include "controller/api/controller_server.h"

namespace morph::controller {

std::shared_ptr<RunOptions> add_run_command(CLI::App& app) {
  auto o = std::make_shared<RunOptions>();
  auto* c = app.add_subcommand("run", "bind the messaging endpoints and serve agents, clients and subscribers");
  c->add_option("--config", o->config_file, "TOML file with a [messaging] table");
  c->add_option("--ingest", o->ingest, "ingest endpoint (XSUB), default tcp://127.0.0.1:7710");
  c->add_option("--control", o->control, "control endpoint (ROUTER), default tcp://127.0.0.1:7711");
  c->add_option("--api", o->api, "api endpoint (ROUTER), default tcp://127.0.0.1:7712");
  c->add_option("--events", o->events, "events endpoint (XPUB), default tcp://127.0.0.1:7713");
  c->add_option("--ipc-dir", o->ipc_dir, "serve on ipc:// sockets in this directory (mode 0700) instead");
  c->add_option("--key", o->key_file, "the controller's secret key file (NAME.key, mode 0600)");
  c->add_option("--allow", o->allow_file, "allow-list of public keys by role (docs/security.md)");
  o->command = c;
  return o;
}

namespace {
Status load_config(RunOptions& o) {
  if (o.config_file.empty()) return {};
  toml::table t;
  try {
    t = toml::parse_file(o.config_file);
  } catch (const toml::parse_error& e) {
    return Error(Errc::invalid_argument, o.config_file + ": " + std::string(e.description()));
  }
  auto m = t["messaging"];
  auto fill = [&](std::string& field, const char* key) {
    if (field.empty()) field = m[key].value_or(std::string());
  };
  fill(o.ingest, "ingest");
  fill(o.control, "control");
  fill(o.api, "api");
  fill(o.events, "events");
  fill(o.ipc_dir, "ipc_dir");
  fill(o.key_file, "key");
  fill(o.allow_file, "allow");
  return {};
}
}  // namespace

int run_controller(const RunOptions& opts, std::shared_ptr<MarketApi> market) {
  RunOptions o = opts;
  if (auto st = load_config(o); !st) {
    spdlog::error("{}", st.error().what());
    return 2;
  }
  ControllerConfig cfg;
  if (!o.ipc_dir.empty()) {
    cfg.endpoints = {"ipc://" + o.ipc_dir + "/ingest", "ipc://" + o.ipc_dir + "/control", "ipc://" + o.ipc_dir + "/api",
                     "ipc://" + o.ipc_dir + "/events"};
  }
  if (!o.ingest.empty()) cfg.endpoints.ingest = o.ingest;
  if (!o.control.empty()) cfg.endpoints.control = o.control;
  if (!o.api.empty()) cfg.endpoints.api = o.api;
  if (!o.events.empty()) cfg.endpoints.events = o.events;
  if (!o.key_file.empty()) {
    auto kp = msg::load_keypair(o.key_file);
    if (!kp) {
      spdlog::error("{}", kp.error().what());
      return 2;
    }
    cfg.server_key = *kp;
    if (o.allow_file.empty()) {
      spdlog::error("--key needs --allow: without an allow-list nobody could connect");
      return 2;
    }
    auto al = msg::AllowList::load(o.allow_file);
    if (!al) {
      spdlog::error("{}", al.error().what());
      return 2;
    }
    spdlog::info("allow-list {}: {} principals", o.allow_file, al->size());
    cfg.allow = std::make_shared<const msg::AllowList>(std::move(al).value());
  }
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  ControllerServer server(cfg, std::move(market));
  if (auto st = server.start(); !st) {
    spdlog::error("{}", st.error().what());
    return 1;
  }
  // The bound endpoints on stdout, one per line, so scripts and tests can use ephemeral ports.
  auto& b = server.endpoints();
  std::printf("ingest %s\ncontrol %s\napi %s\nevents %s\n", b.ingest.c_str(), b.control.c_str(), b.api.c_str(),
              b.events.c_str());
  std::fflush(stdout);
  timespec ts{0, 100'000'000};
  for (;;) {
    int sig = sigtimedwait(&set, nullptr, &ts);
    if (sig == SIGINT || sig == SIGTERM) break;
    if (!server.running()) {
      auto st = server.wait();
      spdlog::critical("controller stopped serving: {}", st ? "unknown reason" : st.error().what());
      return 3;
    }
  }
  spdlog::info("stopping");
  server.stop();
  return 0;
}

}  // namespace morph::controller
