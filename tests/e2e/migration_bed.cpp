#include "tests/e2e/migration_bed.h"

#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "tests/support/requirements.h"

namespace morph::test {

namespace {

std::string g_teardown;  // the down command for the fatal-signal path

std::string env_value(const std::filesystem::path& file, const std::string& key) {
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);)
    if (line.size() > key.size() && line.compare(0, key.size(), key) == 0 && line[key.size()] == '=') {
      std::string v = line.substr(key.size() + 1);
      if (v.size() >= 2 && v.front() == '\'' && v.back() == '\'') v = v.substr(1, v.size() - 2);
      return v;
    }
  return {};
}

}  // namespace

MigrationBed::MigrationBed(const std::string& tag, int vms) : vms_(vms) {
  if (!is_root()) {
    error_ = "needs root (run as root or via scripts/test)";
    return;
  }
  if (auto why = libvirtd_unavailable_reason(); !why.empty()) {
    error_ = why;
    return;
  }
  prefix_ = tag + "-" + std::to_string(getpid());
  char tmpl[] = "/tmp/morph-migration.XXXXXX";
  if (mkdtemp(tmpl) == nullptr) {
    error_ = "mkdtemp failed";
    return;
  }
  tmp_ = tmpl;
  g_teardown = source_dir() + "/scripts/testbed down --prefix " + prefix_ + " >/dev/null 2>&1";
  for (int sig : {SIGINT, SIGTERM, SIGABRT, SIGSEGV})
    std::signal(sig, [](int s) {
      if (std::system(g_teardown.c_str()) != 0) {
      }
      std::signal(s, SIG_DFL);
      std::raise(s);
    });
  auto up = testbed({"up", std::to_string(vms), "--hosts", "2", "--prefix", prefix_}, std::chrono::seconds(400));
  if (up.rc != 0) error_ = "scripts/testbed up --hosts 2 failed (run scripts/testbed prepare first?): " + up.err;
}

MigrationBed::~MigrationBed() {
  if (!prefix_.empty()) testbed({"down", "--prefix", prefix_}, std::chrono::seconds(120));
  std::error_code ec;
  if (!tmp_.empty()) std::filesystem::remove_all(tmp_, ec);
}

RunResult MigrationBed::run(const std::vector<std::string>& argv, std::chrono::seconds timeout) const {
  return run_to_end(argv, tmp_ / ("run." + std::to_string(++runs_) + ".out"), timeout);
}

RunResult MigrationBed::testbed(const std::vector<std::string>& args, std::chrono::seconds timeout) const {
  std::vector<std::string> argv{source_dir() + "/scripts/testbed"};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv, timeout);
}

std::string MigrationBed::uri(int i) const {
  return i == 1 ? "qemu+unix:///system?socket=/run/libvirt/libvirt-sock" : host_env(i, "H_URI");
}

std::string MigrationBed::uuid(int i) const {
  return vm_env(i, "UUID");
}

std::string MigrationBed::transport(const std::string& name) const {
  return "unix://" + (dir() / "migrate" / (name + ".sock")).string();
}

std::string MigrationBed::vm_env(int i, const std::string& key) const {
  return env_value(dir() / "vms" / (vm(i) + ".env"), key);
}

std::string MigrationBed::host_env(int i, const std::string& key) const {
  return env_value(dir() / "hosts" / (host(i) + ".env"), key);
}

bool MigrationBed::load(int i, const std::string& targets) const {
  std::vector<std::string> args{"load", vm(i)};
  std::istringstream in(targets);
  for (std::string t; in >> t;) args.push_back(t);
  return testbed(args).rc == 0;
}

std::map<int, std::string> MigrationBed::where(const std::string& name) const {
  std::map<int, std::string> out;
  for (int h = 1; h <= 2; ++h) {
    auto r = run({"/usr/bin/virsh", "-c", uri(h), "domstate", name}, std::chrono::seconds(30));
    if (r.rc == 0) {
      std::string state = r.out.substr(0, r.out.find('\n'));
      out[h] = state;
    } else if (r.err.find("failed to get domain") == std::string::npos) {
      out[h] = "unreachable: " + r.err;
    }
  }
  return out;
}

std::optional<int> MigrationBed::only_host(const std::string& name) const {
  auto w = where(name);
  if (w.size() != 1 || w.begin()->second != "running") return std::nullopt;
  return w.begin()->first;
}

std::vector<std::string> MigrationBed::migrate_argv(int i, int from, int to,
                                                    const std::vector<std::string>& extra) const {
  std::vector<std::string> argv{binary_dir() + "/hostagent/morph-agent",
                                "migrate",
                                vm(i),
                                "--connect",
                                uri(from),
                                "--to",
                                uri(to),
                                "--unsafe",
                                "--transport",
                                transport(vm(i)),
                                "--json"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return argv;
}

RunResult MigrationBed::migrate(int i, int from, int to, const std::vector<std::string>& extra,
                                std::chrono::seconds timeout) const {
  return run(migrate_argv(i, from, to, extra), timeout);
}

std::string MigrationBed::console(int i) const {
  return slurp_file(vm_env(i, "CONSOLE"));
}

std::vector<LoadCounters> MigrationBed::counters(int i) const {
  std::vector<LoadCounters> out;
  std::istringstream in(console(i));
  const std::string marker = "morph-load[" + vm(i) + "]: counters ";
  for (std::string line; std::getline(in, line);) {
    auto pos = line.find(marker);
    if (pos == std::string::npos) continue;
    LoadCounters c;
    unsigned long long v[8];
    if (std::sscanf(line.c_str() + pos + marker.size(),
                    "t=%lf cpu_ms=%llu rd=%llu wr=%llu tx=%llu rx=%llu dirty=%llu polls=%llu errors=%llu", &c.t, &v[0],
                    &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) == 9) {
      c.cpu_ms = v[0], c.rd = v[1], c.wr = v[2], c.tx = v[3], c.rx = v[4], c.dirty = v[5], c.polls = v[6],
      c.errors = v[7];
      out.push_back(c);
    }
  }
  return out;
}

std::vector<std::string> MigrationBed::io_errors(int i) const {
  std::vector<std::string> out;
  std::istringstream in(console(i));
  for (std::string line; std::getline(in, line);)
    if (line.find("I/O error") != std::string::npos || line.find("blk_update_request") != std::string::npos ||
        (line.find("/dev/vda") != std::string::npos && line.find("failed") != std::string::npos))
      out.push_back(line);
  return out;
}

std::vector<std::string> MigrationBed::kernel_faults(int i) const {
  std::vector<std::string> out;
  std::istringstream in(console(i));
  for (std::string line; std::getline(in, line);)
    for (const char* sign : {"BUG:", "Oops", "Kernel panic", "general protection fault"})
      if (line.find(sign) != std::string::npos) {
        out.push_back(line);
        break;
      }
  return out;
}

int MigrationBed::boots(int i) const {
  const std::string c = console(i);
  int n = 0;
  for (size_t p = c.find("morph-init: vm="); p != std::string::npos; p = c.find("morph-init: vm=", p + 1)) ++n;
  return n;
}

int MigrationBed::qemu_processes(const std::string& name) const {
  int n = 0;
  const std::string needle = "guest=" + name + ",";
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    const std::string pid = e.path().filename();
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmd = slurp_file(e.path() / "cmdline");
    for (char& c : cmd)
      if (c == '\0') c = ' ';
    if (cmd.find("qemu-system") != std::string::npos && cmd.find(needle) != std::string::npos) ++n;
  }
  return n;
}

}  // namespace morph::test
