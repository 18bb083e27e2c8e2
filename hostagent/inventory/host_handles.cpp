#include "hostagent/inventory/host_handles.h"

#include <linux/magic.h>
#include <net/if.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include <cerrno>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "hostagent/inventory/domain_xml.h"

namespace morph::agent {
namespace {

bool is_cgroup2(const std::string& path) {
  struct statfs fs {};
  return statfs(path.c_str(), &fs) == 0 && fs.f_type == CGROUP2_SUPER_MAGIC;
}

Result<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error::from_errno("reading " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return Error::from_errno("reading " + path);
  return ss.str();
}

std::string join(const std::string& root, const std::string& rel) {
  if (rel.empty() || rel == "/") return root;
  if (!root.empty() && root.back() == '/' && rel.front() == '/') return root + rel.substr(1);
  if (!root.empty() && root.back() != '/' && rel.front() != '/') return root + "/" + rel;
  return root + rel;
}

}  // namespace

Result<std::string> detect_cgroup2_root() {
  for (const char* p : {"/sys/fs/cgroup/unified", "/sys/fs/cgroup"})
    if (is_cgroup2(p)) return std::string(p);
  return Error(Errc::unavailable, "no cgroup2 hierarchy at /sys/fs/cgroup/unified or /sys/fs/cgroup");
}

Result<std::string> parse_proc_cgroup_v2(std::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    if (line.starts_with("0::")) {
      std::string_view path = line.substr(3);
      // A process whose cgroup was removed shows " (deleted)"; its id can no longer be read.
      if (path.empty() || path.front() != '/')
        return Error(Errc::invalid_argument, "cgroup v2 line '" + std::string(line) + "' has no absolute path");
      return std::string(path);
    }
    pos = end + 1;
  }
  return Error(Errc::not_found, "no cgroup v2 (\"0::\") line in /proc/PID/cgroup");
}

std::string vm_cgroup_of(std::string_view path) {
  static constexpr std::string_view kSuffix = ".libvirt-qemu";
  std::string_view p = path;
  while (!p.empty() && p != "/") {
    size_t slash = p.rfind('/');
    std::string_view last = slash == std::string_view::npos ? p : p.substr(slash + 1);
    if (last.ends_with(kSuffix)) return std::string(p);
    if (slash == std::string_view::npos || slash == 0) break;
    p = p.substr(0, slash);
  }
  return std::string(path);
}

Result<int> read_qemu_pid(const std::string& run_dir, const std::string& name) {
  const std::string pid_file = run_dir + "/" + name + ".pid";
  auto content = read_file(pid_file);
  if (content.ok()) {
    const std::string& s = *content;
    int pid = 0;
    size_t b = s.find_first_not_of(" \t\n");
    if (b != std::string::npos) {
      auto [p, ec] = std::from_chars(s.data() + b, s.data() + s.size(), pid);
      if (ec == std::errc() && pid > 0 && (p == s.data() + s.size() || *p == '\n' || *p == ' ')) return pid;
    }
  }
  const std::string status_file = run_dir + "/" + name + ".xml";
  auto status = read_file(status_file);
  if (!status.ok())
    return Error(Errc::not_found,
                 "no QEMU pid for domain " + name + ": neither " + pid_file + " nor " + status_file + " is readable");
  auto pid = parse_domstatus_pid(*status);
  if (!pid.ok()) return std::move(pid).error().with_context(status_file);
  return pid;
}

Result<std::string> process_cgroup_v2(const std::string& proc_root, int pid) {
  const std::string path = proc_root + "/" + std::to_string(pid) + "/cgroup";
  MORPH_TRY_ASSIGN(std::string text, read_file(path));
  auto cg = parse_proc_cgroup_v2(text);
  if (!cg.ok()) return std::move(cg).error().with_context(path);
  return cg;
}

Result<uint64_t> cgroup_id(const std::string& root, const std::string& cgroup_path) {
  const std::string dir = join(root, cgroup_path);
  struct stat st {};
  if (stat(dir.c_str(), &st) != 0) return Error::from_errno("stat " + dir);
  if (!S_ISDIR(st.st_mode)) return Error(Errc::invalid_argument, dir + " is not a cgroup directory");
  return static_cast<uint64_t>(st.st_ino);
}

Result<std::vector<uint64_t>> subtree_cgroup_ids(const std::string& root, const std::string& cgroup_path) {
  std::vector<uint64_t> ids;
  MORPH_TRY_ASSIGN(uint64_t self, cgroup_id(root, cgroup_path));
  ids.push_back(self);
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::recursive_directory_iterator it(join(root, cgroup_path), fs::directory_options::skip_permission_denied, ec);
  if (ec) return Error::from_errno("listing " + join(root, cgroup_path), ec.value());
  for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;  // a child removed mid-walk ends the walk; what was seen is still valid
    std::error_code sec;
    if (!it->is_directory(sec) || it->is_symlink(sec)) continue;
    struct stat st {};
    if (stat(it->path().c_str(), &st) == 0) ids.push_back(static_cast<uint64_t>(st.st_ino));
  }
  return ids;
}

Result<uint32_t> tap_ifindex(const std::string& dev) {
  if (dev.empty() || dev.size() >= IF_NAMESIZE)
    return Error(Errc::invalid_argument, "'" + dev + "' is not a valid network device name");
  unsigned idx = if_nametoindex(dev.c_str());
  if (idx == 0) {
    if (errno == ENODEV || errno == ENXIO) return Error(Errc::not_found, "no network device " + dev, errno);
    return Error::from_errno("if_nametoindex " + dev);
  }
  return static_cast<uint32_t>(idx);
}

Status resolve_host_handles(VmInfo& vm, const HostPaths& paths) {
  if (paths.cgroup2_root.empty()) return Error(Errc::invalid_argument, "resolve_host_handles: cgroup2 root not set");
  const std::string ctx = "vm=" + vm.name;
  auto pid = read_qemu_pid(paths.libvirt_run_dir, vm.name);
  if (!pid.ok()) return std::move(pid).error().with_context(ctx);
  vm.pid = *pid;
  auto proc_cg = process_cgroup_v2(paths.proc_root, vm.pid);
  if (!proc_cg.ok()) return std::move(proc_cg).error().with_context(ctx);
  vm.cgroup_path = vm_cgroup_of(*proc_cg);
  auto id = cgroup_id(paths.cgroup2_root, vm.cgroup_path);
  if (!id.ok()) return std::move(id).error().with_context(ctx);
  vm.cgroup_id = *id;
  for (VmTap& tap : vm.taps) {
    if (tap.dev.empty()) continue;
    auto idx = tap_ifindex(tap.dev);
    if (!idx.ok()) return std::move(idx).error().with_context(ctx);
    tap.ifindex = *idx;
  }
  return {};
}

}  // namespace morph::agent
