#include "common/msg/curve_keys.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include <fstream>
#include <sstream>

#include "common/enum_names.h"

namespace morph::msg {

Result<KeyPair> generate_keypair() {
  char pub[41], sec[41];
  if (zmq_curve_keypair(pub, sec) != 0) return Error::from_errno("zmq_curve_keypair (libzmq without CURVE?)");
  return KeyPair{pub, sec};
}

namespace {
Status write_file(const std::string& path, const std::string& content, mode_t mode) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return Error::from_errno("creating " + path);
  ::fchmod(fd, mode);  // not subject to umask
  ssize_t n = ::write(fd, content.data(), content.size());
  int err = errno;
  ::close(fd);
  if (n != static_cast<ssize_t>(content.size())) return Error::from_errno("writing " + path, err);
  return {};
}

bool valid_z85_key(std::string_view k) {
  if (k.size() != 40) return false;
  uint8_t out[32];
  std::string s(k);
  return zmq_z85_decode(out, s.c_str()) != nullptr;
}

Result<std::string> read_text(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Error(Errc::not_found, "cannot read " + path, errno);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
}  // namespace

Status write_keypair(const std::string& dir, const std::string& name, const KeyPair& kp) {
  if (name.empty() || name.find('/') != std::string::npos || name.starts_with("."))
    return Error(Errc::invalid_argument, "key name '" + name + "' must be a plain file name");
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 && ::mkdir(dir.c_str(), 0700) != 0) return Error::from_errno("creating " + dir);
  MORPH_TRY(
      write_file(dir + "/" + name + ".key", "public " + kp.public_z85 + "\nsecret " + kp.secret_z85 + "\n", 0600));
  MORPH_TRY(write_file(dir + "/" + name + ".pub", kp.public_z85 + "\n", 0644));
  return {};
}

Result<KeyPair> load_keypair(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return Error::from_errno("secret key " + path);
  if ((st.st_mode & 077) != 0)
    return Error(Errc::permission_denied,
                 "secret key file " + path + " is readable by group or others; chmod 600 it (refusing to use it)");
  MORPH_TRY_ASSIGN(std::string text, read_text(path));
  KeyPair kp;
  std::istringstream in(text);
  std::string tag, val;
  while (in >> tag >> val) {
    if (tag == "public")
      kp.public_z85 = val;
    else if (tag == "secret")
      kp.secret_z85 = val;
  }
  if (!valid_z85_key(kp.secret_z85))
    return Error(Errc::invalid_argument, "secret key file " + path + " has no valid 'secret <z85>' line");
  char pub[41];
  if (zmq_curve_public(pub, kp.secret_z85.c_str()) != 0) return Error::from_errno("deriving public key of " + path);
  if (!kp.public_z85.empty() && kp.public_z85 != pub)
    return Error(Errc::invalid_argument, "secret key file " + path + ": public line does not match the secret");
  kp.public_z85 = pub;
  return kp;
}

Result<std::string> load_public_key(const std::string& path) {
  MORPH_TRY_ASSIGN(std::string text, read_text(path));
  std::istringstream in(text);
  std::string a, b;
  in >> a;
  if (a == "public") in >> a;
  if (!valid_z85_key(a)) return Error(Errc::invalid_argument, "public key file " + path + " holds no Z85 key");
  return a;
}

namespace {
constexpr auto kRoleNames = enum_names<Role::admin>({"agent", "tenant", "admin"});
}  // namespace

const char* role_name(Role r) {
  return kRoleNames.name(r);
}

std::optional<Role> parse_role(std::string_view s) {
  return kRoleNames.parse(s);
}

Status AllowList::add(Principal p) {
  if (!valid_z85_key(p.public_z85))
    return Error(Errc::invalid_argument, "public key of " + p.name + " is not a 40-character Z85 key");
  if (p.name.empty() || p.name.find(':') != std::string::npos)
    return Error(Errc::invalid_argument, "principal name '" + p.name + "' is empty or contains ':'");
  if (p.role == Role::tenant && p.account.empty())
    return Error(Errc::invalid_argument, "tenant " + p.name + " has no account");
  if (find(p.role, p.name))
    return Error(Errc::already_exists, std::string(role_name(p.role)) + " " + p.name + " listed twice");
  auto key = p.public_z85;
  if (!by_key_.emplace(key, std::move(p)).second)
    return Error(Errc::already_exists, "public key " + key + " listed twice");
  return {};
}

Result<AllowList> AllowList::parse(std::string_view text, const std::string& origin) {
  AllowList al;
  std::istringstream in{std::string(text)};
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    // Only whole-line comments: '#' is a Z85 digit, so it may appear inside a key.
    if (auto first = line.find_first_not_of(" \t"); first != std::string::npos && line[first] == '#') continue;
    std::istringstream ls(line);
    std::vector<std::string> f;
    for (std::string w; ls >> w;) f.push_back(w);
    if (f.empty()) continue;
    auto where = origin + ":" + std::to_string(lineno);
    auto role = parse_role(f[0]);
    if (!role) return Error(Errc::invalid_argument, where + ": unknown role '" + f[0] + "' (agent, tenant, admin)");
    size_t want = *role == Role::tenant ? 4 : 3;
    if (f.size() != want)
      return Error(Errc::invalid_argument, where + ": " + f[0] + " lines have " + std::to_string(want) + " fields");
    Principal p{*role, f[1], want == 4 ? f[3] : std::string(), f[2]};
    if (auto st = al.add(std::move(p)); !st) return std::move(st).error().with_context(where);
  }
  return al;
}

Result<AllowList> AllowList::load(const std::string& path) {
  MORPH_TRY_ASSIGN(std::string text, read_text(path));
  return parse(text, path);
}

const Principal* AllowList::find_by_key(std::string_view k) const {
  auto it = by_key_.find(k);
  return it == by_key_.end() ? nullptr : &it->second;
}

const Principal* AllowList::find(Role role, std::string_view name) const {
  for (auto& [k, p] : by_key_)
    if (p.role == role && p.name == name) return &p;
  return nullptr;
}

std::string user_id(const Principal& p) {
  return std::string(role_name(p.role)) + ":" + p.name;
}

std::optional<std::pair<Role, std::string>> parse_user_id(std::string_view uid) {
  auto c = uid.find(':');
  if (c == std::string_view::npos) return std::nullopt;
  auto r = parse_role(uid.substr(0, c));
  if (!r) return std::nullopt;
  return std::make_pair(*r, std::string(uid.substr(c + 1)));
}

}  // namespace morph::msg
