#include "controller/cli/top.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <memory>
#include <sstream>
#include <thread>

#include "controller/cli/command.h"
#include "controller/dashboard/dashboard.h"

namespace morph::cli {

namespace {

std::atomic<bool> g_interrupted{false};
void on_sigint(int) {
  g_interrupted = true;
}

std::string rate(double b) {
  static const char* units[] = {"B/s", "KiB/s", "MiB/s", "GiB/s"};
  int i = 0;
  while (b >= 1024 && i < 3) b /= 1024, ++i;
  char buf[32];
  std::snprintf(buf, sizeof buf, i ? "%.1f %s" : "%.0f %s", b, units[i]);
  return buf;
}

std::string clock_of(uint64_t ns) {
  if (!ns) return "-";
  time_t t = static_cast<time_t>(ns / 1'000'000'000ULL);
  tm tmv{};
  localtime_r(&t, &tmv);
  char buf[16];
  std::strftime(buf, sizeof buf, "%H:%M:%S", &tmv);
  return buf;
}

std::string fit(const std::string& s, size_t w) {
  return s.size() <= w ? s : s.substr(0, w - 1) + "~";
}

struct Style {
  bool ansi;
  std::string bold(const std::string& s) const { return ansi ? "\x1b[1m" + s + "\x1b[0m" : s; }
  std::string warn(const std::string& s) const { return ansi ? "\x1b[33;1m" + s + "\x1b[0m" : s; }
};

}  // namespace

std::string render_top(const fleet::FleetState& s, bool ansi) {
  Style st{ansi};
  std::ostringstream o;
  char line[512];
  size_t up = 0;
  for (auto& [n, h] : s.hosts) up += h.up;
  std::snprintf(line, sizeof line, "morph top  %s  hosts %zu (%zu up)  VMs %zu  events %llu%s%s",
                clock_of(s.updated_ns).c_str(), s.hosts.size(), up, s.vms.size(),
                static_cast<unsigned long long>(s.events_seen), s.last_error.empty() ? "" : "  ! ",
                s.last_error.c_str());
  o << st.bold(line) << "\n\n";

  std::snprintf(line, sizeof line, "%-28s %-12s %-10s %6s %6s %11s %11s %11s %11s  %s", "VM", "HOST", "OWNER", "CPU%",
                "WAIT%", "DISK-R", "DISK-W", "NET-RX", "NET-TX", "BOUGHT");
  o << st.bold(line) << "\n";
  std::map<std::string, std::string> bought;
  for (auto& [id, a] : s.allocations) {
    auto& b = bought[a.vm_uuid];
    if (!b.empty()) b += ", ";
    b += a.resource + " +" + std::to_string(a.quantity) + " @" + std::to_string(a.price);
  }
  if (s.vms.empty()) o << "  (no VM has reported yet)\n";
  for (auto& [uuid, v] : s.vms) {
    std::string name = fit(v.name.empty() ? uuid : v.name, 28);
    if (v.kpis.empty()) {
      std::snprintf(line, sizeof line, "%-28s %-12s %-10s %6s %6s", name.c_str(), fit(v.host, 12).c_str(),
                    fit(v.owner, 10).c_str(), "-", "-");
      o << line << "\n";
      continue;
    }
    auto& k = v.kpis.back();
    char wait[16];
    std::snprintf(wait, sizeof wait, "%6.1f", k.runq_wait_pct);
    std::snprintf(line, sizeof line, "%-28s %-12s %-10s %6.1f ", name.c_str(), fit(v.host, 12).c_str(),
                  fit(v.owner, 10).c_str(), k.cpu_pct);
    o << line << (k.runq_wait_pct > 20 ? st.warn(wait) : std::string(wait));
    std::snprintf(line, sizeof line, " %11s %11s %11s %11s  %s", rate(k.disk_read_Bps).c_str(),
                  rate(k.disk_write_Bps).c_str(), rate(k.net_rx_Bps).c_str(), rate(k.net_tx_Bps).c_str(),
                  bought.count(uuid) ? bought[uuid].c_str() : "-");
    o << line << "\n";
  }

  o << "\n" << st.bold("PRICES (µcr per unit-second, latest tick)") << "\n";
  bool any = false;
  for (auto& [book, d] : s.prices) {
    if (d.empty()) continue;
    any = true;
    auto& p = d.back();
    std::snprintf(line, sizeof line, "  %-40s price %8lld  allocated %8lld / supply %lld  (tick %llu)", book.c_str(),
                  static_cast<long long>(p.price), static_cast<long long>(p.allocated),
                  static_cast<long long>(p.supply), static_cast<unsigned long long>(p.tick));
    o << line << "\n";
  }
  if (!any) o << "  (no prices yet: is a market running on the controller?)\n";

  if (!s.shifts.empty()) {
    o << "\n" << st.bold("RECENT SHIFTS") << "\n";
    for (size_t i = s.shifts.size() > 5 ? s.shifts.size() - 5 : 0; i < s.shifts.size(); ++i) {
      auto& x = s.shifts[i];
      o << "  " << clock_of(x.t_ns) << "  " << s.vm_name(x.vm_uuid) << "  " << x.phase << "  " << x.adjustments
        << (x.error.empty() ? "" : "  error: " + x.error) << "\n";
    }
  }
  if (!s.bids.empty()) {
    o << "\n" << st.bold("RECENT BID OUTCOMES") << "\n";
    for (size_t i = s.bids.size() > 5 ? s.bids.size() - 5 : 0; i < s.bids.size(); ++i) {
      auto& b = s.bids[i];
      o << "  " << clock_of(b.t_ns) << "  bid " << b.bid_id << "  " << s.vm_name(b.vm_uuid) << "  " << b.resource
        << "  " << b.outcome << (b.reason.empty() ? "" : " (" + b.reason + ")") << "  " << b.filled << "/" << b.quantity
        << " @ max " << b.max_price << "\n";
    }
  }
  return o.str();
}

int run_top(const TopOptions& opts) {
  std::ostream& out = opts.out ? *opts.out : std::cout;
  auto fo = fleet::resolve(opts.controller);
  if (!fo) {
    std::cerr << "morphctl top: " << fo.error().what() << "\n";
    return 2;
  }
  const bool bounded = opts.once || opts.count > 0;
  const bool ansi = !opts.json && (opts.ansi >= 0 ? opts.ansi == 1 : (!bounded && !opts.out && isatty(STDOUT_FILENO)));
  // Not a terminal and no bound: one frame, as --once (a pipe would otherwise fill forever).
  const int frames = opts.once ? 1 : opts.count > 0 ? opts.count : (ansi ? 0 : 1);
  auto view = fleet::FleetView::start(*fo);
  if (!view) {
    std::cerr << "morphctl top: " << view.error().what() << "\n";
    return 2;
  }
  auto has_kpis = [](const fleet::FleetState& s) {
    for (auto& [u, v] : s.vms)
      if (!v.kpis.empty()) return true;
    return false;
  };
  bool got = (*view)->wait_for(has_kpis, opts.wait);
  if (!got && frames > 0) {
    auto s = (*view)->state();
    std::cerr << "morphctl top: no KPIs from " << fo->events << " within " << opts.wait.count() << " ms"
              << (s.last_error.empty() ? "" : " (" + s.last_error + ")") << "\n";
    return 1;
  }
  g_interrupted = false;
  struct sigaction sa {
  }, old{};
  sa.sa_handler = on_sigint;
  sigaction(SIGINT, &sa, &old);
  for (int n = 0; (frames == 0 || n < frames) && !g_interrupted; ++n) {
    if (n > 0) {
      auto end = std::chrono::steady_clock::now() + opts.interval;
      while (std::chrono::steady_clock::now() < end && !g_interrupted)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      if (g_interrupted) break;
      if (!ansi && !opts.json) out << "\n";
    }
    if (opts.json) {
      out << dashboard::state_json((*view)->state(), 1).dump() << "\n" << std::flush;
      continue;
    }
    auto frame = render_top((*view)->state(), ansi);
    if (ansi) out << "\x1b[H\x1b[2J";
    out << frame << std::flush;
  }
  sigaction(SIGINT, &old, nullptr);
  return 0;
}

// `morphctl top` reads the events stream as well as the api, so it takes its own endpoints and keys
// (--ipc-dir, or --api and --events) rather than the global --connect.
void add_top(Commands& commands) {
  auto o = std::make_shared<TopOptions>();
  auto* c = commands.app().add_subcommand("top", "live view of VMs, their KPIs, allocations and prices (like top)");
  c->add_option("--api", o->controller.api, "controller api endpoint (default tcp://127.0.0.1:7712)");
  c->add_option("--events", o->controller.events, "controller events endpoint (default tcp://127.0.0.1:7713)");
  c->add_option("--ipc-dir", o->controller.ipc_dir, "the controller's --ipc-dir: use its ipc:// sockets");
  c->add_option("--key", o->controller.key_file, "this client's secret key file (NAME.key), for tcp://");
  c->add_option("--server-key", o->controller.server_key_file, "the controller's public key file (controller.pub)");
  c->add_flag("--once", o->once, "print one plain-text frame and exit");
  c->add_flag("--json", o->json,
              "print each frame as one line of JSON (hosts, vms with their latest KPIs, allocations, "
              "prices, shifts, bids)");
  c->add_option("--count", o->count, "print N plain-text frames, one per interval, and exit")
      ->check(CLI::NonNegativeNumber);
  auto* iv = c->add_option_function<double>(
      "--interval", [o](double s) { o->interval = std::chrono::milliseconds(static_cast<long>(s * 1000)); },
      "seconds between frames (default 1)");
  iv->check(CLI::Range(0.1, 3600.0));
  Commands::examples(
      c,
      {"morphctl top --ipc-dir /run/morph", "morphctl top --ipc-dir /run/morph --count 3 --json",
       "morphctl top --api tcp://ctl:7712 --events tcp://ctl:7713 --key ops.key --server-key controller.pub --once"});
  commands.on(c, [o](Session& s) {
    TopOptions run = *o;
    if (&s.out != &std::cout) run.out = &s.out;  // a captured stream (a test's) is never a terminal
    return run_top(run);
  });
}

}  // namespace morph::cli
