#include "tests/e2e/migration_bed.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/support/daemons.h"
#include "tests/support/requirements.h"

namespace morph::test {

namespace {

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

BedSpec MigrationBed::spec(const std::string& tag, int vms, bool needs_bpf) {
  return {unique_prefix(tag), vms, {"--hosts", "2"}, needs_bpf};
}

MigrationBed::MigrationBed(const Testbed& bed) : bed_(bed) {}

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

std::string MigrationBed::transport(const std::string& name) const {
  return "unix://" + bed_.dir() + "/migrate/" + name + ".sock";
}

std::string MigrationBed::host_env(int i, const std::string& key) const {
  return env_value(bed_.dir() + "/hosts/" + host(i) + ".env", key);
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
  std::vector<std::string> argv{program("hostagent/morph-agent"),
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

std::vector<std::string> MigrationBed::console_lines(int i, const std::vector<std::string>& signs) const {
  std::vector<std::string> out;
  std::istringstream in(console(i));
  for (std::string line; std::getline(in, line);)
    if (std::any_of(signs.begin(), signs.end(),
                    [&](const std::string& s) { return line.find(s) != std::string::npos; }))
      out.push_back(line);
  return out;
}

std::vector<std::string> MigrationBed::io_errors(int i) const {
  auto out = console_lines(i, {"I/O error", "blk_update_request", "/dev/vda"});
  // A /dev/vda line is an error only when it says something failed.
  std::erase_if(out, [](const std::string& l) {
    return l.find("I/O error") == std::string::npos && l.find("blk_update_request") == std::string::npos &&
           l.find("failed") == std::string::npos;
  });
  return out;
}

std::vector<std::string> MigrationBed::kernel_faults(int i) const {
  return console_lines(i, {"BUG:", "Oops", "Kernel panic", "general protection fault"});
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
    std::string cmd = slurp(e.path() / "cmdline");
    for (char& c : cmd)
      if (c == '\0') c = ' ';
    if (cmd.find("qemu-system") != std::string::npos && cmd.find(needle) != std::string::npos) ++n;
  }
  return n;
}

}  // namespace morph::test
