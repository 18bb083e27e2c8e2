#pragma once
// The two-host view of a test bed for the live-migration tests and benchmark: a tests/support Testbed
// brought up with `--hosts 2` (MigrationBed::spec; its VMs on P-h1) owns the bed, and this answers where a
// VM is (asking each host's libvirtd, as `virsh list --all` would), runs `morph-agent migrate` and `virsh
// migrate`, and reads a VM's console log and morph-load's running totals from it. Nothing here changes a
// VM except through those commands.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "tests/support/files.h"
#include "tests/support/process.h"
#include "tests/support/testbed.h"

namespace morph::test {

// One line "morph-load[VM]: counters t=... cpu_ms=... rd=... wr=... tx=... rx=... dirty=... polls=... errors=...".
struct LoadCounters {
  double t = 0;  // the guest's monotonic seconds
  uint64_t cpu_ms = 0, rd = 0, wr = 0, tx = 0, rx = 0, dirty = 0, polls = 0, errors = 0;
};

class MigrationBed {
 public:
  // A bed of `vms` VMs on the first of two hosts, under a prefix unique to this run.
  static BedSpec spec(const std::string& tag, int vms = 1, bool needs_bpf = false);
  // `bed` must be up and outlive this.
  explicit MigrationBed(const Testbed& bed);

  const std::string& prefix() const { return bed_.prefix(); }
  std::string vm(int i = 1) const { return prefix() + "-vm" + std::to_string(i); }
  std::string uuid(int i = 1) const { return bed_.vm(size_t(i - 1)).uuid; }
  std::string host(int i) const { return prefix() + "-h" + std::to_string(i); }
  std::string uri(int i) const;  // host i's libvirt URI (`scripts/testbed hosts`)
  // A migration socket QEMU may create on every host: unix:///<bed>/migrate/<name>.sock.
  std::string transport(const std::string& name) const;
  // A value of a host's env file (hosts/HOST.env); empty when absent.
  std::string host_env(int i, const std::string& key) const;

  // Hosts (1, 2) whose libvirtd has the domain named `vm`, with its state ("running", "shut off", ...):
  // a host that does not answer is listed with state "unreachable".
  std::map<int, std::string> where(const std::string& vm) const;
  // The one host where vm runs while no other host has it at all; nullopt otherwise.
  std::optional<int> only_host(const std::string& vm) const;

  // `scripts/testbed ARGS...` and any command, to completion.
  RunResult testbed(const std::vector<std::string>& args,
                    std::chrono::seconds timeout = std::chrono::seconds(60)) const;
  RunResult run(const std::vector<std::string>& argv, std::chrono::seconds timeout = std::chrono::seconds(120)) const;
  bool load(int i, const std::string& targets) const { return bed_.load(size_t(i - 1), targets).ok(); }
  // `morph-agent migrate VM --connect <from> --to <to> --unsafe --transport ... --json EXTRA...`.
  RunResult migrate(int i, int from, int to, const std::vector<std::string>& extra = {},
                    std::chrono::seconds timeout = std::chrono::seconds(120)) const;
  std::vector<std::string> migrate_argv(int i, int from, int to, const std::vector<std::string>& extra = {}) const;

  // A path in this bed's private scratch directory (a child's output).
  std::filesystem::path scratch(const std::string& name) const { return tmp_ / name; }

  std::string console(int i) const { return slurp(bed_.vm(size_t(i - 1)).console); }
  std::vector<LoadCounters> counters(int i) const;
  // Lines of the console that report a disk error (the guest kernel's or morph-load's).
  std::vector<std::string> io_errors(int i) const;
  // Lines of the console that report a fault of the guest kernel (oops, BUG, panic, general protection).
  std::vector<std::string> kernel_faults(int i) const;
  // How often the guest booted (its /init's "morph-init: vm=" line): more than once is a reboot.
  int boots(int i) const;
  // QEMU processes running `vm` on the machine, whichever host they belong to.
  int qemu_processes(const std::string& vm) const;

 private:
  // Lines of VM i's console that contain any of `signs`.
  std::vector<std::string> console_lines(int i, const std::vector<std::string>& signs) const;
  const Testbed& bed_;
  TempDir tmp_{"migration"};
  mutable int runs_ = 0;
};

}  // namespace morph::test
