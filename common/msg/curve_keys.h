#pragma once
// CURVE key pairs and the allow-list of public keys by role (file formats in docs/security.md).
//
// Key files, written by `morphctl keys gen --out DIR --name NAME`:
//   DIR/NAME.pub   one line: the 40-character Z85 public key           (mode 0644)
//   DIR/NAME.key   two lines: "public <z85>" and "secret <z85>"         (mode 0600)
// A secret key file readable by group or others is refused, naming the file.
//
// Allow-list file: one principal per line, fields separated by blanks; a line starting with '#' is a
// comment (only whole lines: '#' is also a Z85 digit):
//   agent   <host-id>   <public-z85>
//   tenant  <name>      <public-z85>   <account>
//   admin   <name>      <public-z85>

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace morph::msg {

struct KeyPair {
  std::string public_z85;
  std::string secret_z85;
};

Result<KeyPair> generate_keypair();
// Writes NAME.pub and NAME.key into dir (created 0700 if missing); refuses to overwrite.
Status write_keypair(const std::string& dir, const std::string& name, const KeyPair& kp);
// Loads a NAME.key file; refuses one that group or others can read.
Result<KeyPair> load_keypair(const std::string& secret_path);
// Loads a NAME.pub file (or a .key file, taking its public line).
Result<std::string> load_public_key(const std::string& path);

enum class Role { agent, tenant, admin };
const char* role_name(Role r);
std::optional<Role> parse_role(std::string_view s);

struct Principal {
  Role role = Role::agent;
  std::string name;     // host id for agents
  std::string account;  // tenants only
  std::string public_z85;
};

// Immutable after loading; safe to share between threads.
class AllowList {
 public:
  static Result<AllowList> parse(std::string_view text, const std::string& origin);
  static Result<AllowList> load(const std::string& path);
  Status add(Principal p);

  const Principal* find_by_key(std::string_view public_z85) const;
  const Principal* find(Role role, std::string_view name) const;
  size_t size() const { return by_key_.size(); }

 private:
  std::map<std::string, Principal, std::less<>> by_key_;
};

// The ZAP User-Id of a principal ("role:name") and its inverse.
std::string user_id(const Principal& p);
std::optional<std::pair<Role, std::string>> parse_user_id(std::string_view uid);

}  // namespace morph::msg
