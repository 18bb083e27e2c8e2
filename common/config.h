#pragma once
// Configuration of the daemons: one TOML file per daemon, checked against a declared schema.
//
// Each daemon declares its keys once (config_schemas.h): dotted name, type, default, a doc string and the
// constraint its values must meet. A Config is built from, in order, the defaults, the TOML file, then
// command-line overrides (`--set key=value` and typed flags bound to keys). Anything wrong — an unknown
// key, a value of the wrong type or out of range, a TOML syntax error — is refused at start with an Error
// (Errc::invalid_argument) naming the key, the file and line, and what was expected.
//
// The schema is also the documentation: render_markdown_table() produces the key tables of
// docs/operations.md and render_example_toml() the files in config/; unit tests keep both in step.
//
// This module never reads the environment and never opens any file but the one it is given.
//
// Where each part lives: keys, schemas and values in config.cpp; the text forms of durations, sizes,
// endpoints and listen addresses in config_values.h; reading TOML in config_toml.cpp; the command line in
// config_cli.cpp; the generated docs in config_render.cpp.

#include <chrono>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/config_values.h"
#include "common/error.h"

namespace CLI {
class App;
class Option;
}  // namespace CLI

namespace morph::config {

enum class Type {
  string,  // free text
  path,    // a file or directory path (not checked for existence here)
  boolean,
  integer,   // signed 64-bit
  duration,  // "1s", "100ms", "5m", "250us", "1h", "1m30s"
  bytes,     // an integer of bytes or "64KiB", "1MiB", "2G" (K/M/G/T and KiB/MiB/GiB/TiB are powers of 1024)
  endpoint,  // a ZeroMQ endpoint: "tcp://host:port" or "ipc:///absolute/path"
  listen,    // an HTTP listen address "host:port" ("[v6]:port"); "" disables the listener
  choice,    // one of a fixed set of words
};
const char* type_name(Type t);

// The parsed value of a key. Durations are nanoseconds; bytes are a uint64_t.
using Value = std::variant<bool, int64_t, uint64_t, std::chrono::nanoseconds, std::string>;
// The value as it would be written on a command line ("1s", "64KiB", "5", "true", "info").
std::string format_value(const Value& v);

// One declared key. Built through the chainable setters returned by Schema::add().
class Key {
 public:
  Key(std::string name, Type type, std::string default_text, std::string doc);

  // Inclusive bounds, written as the key's values are ("100ms", "1KiB", "5").
  Key& min(std::string text);
  Key& max(std::string text);
  // For Type::choice: the accepted words.
  Key& choices(std::vector<std::string> words);
  // For Type::endpoint: allow only some schemes (default both "tcp" and "ipc").
  Key& schemes(std::vector<std::string> allowed);

  const std::string& name() const { return name_; }
  Type type() const { return type_; }
  const std::string& default_text() const { return default_text_; }
  const std::string& doc() const { return doc_; }
  // "duration ≥ 100ms", "one of revert, hold", "integer 0..1000", ...: what a valid value is.
  std::string expectation() const;

  // Parses and checks text (as written on a command line or as a default) against this key.
  Result<Value> parse_text(std::string_view text) const;
  // Checks an already typed value against the key's constraint.
  Status check(const Value& v) const;

 private:
  friend class Schema;
  std::string name_;
  Type type_;
  std::string default_text_;
  std::string doc_;
  std::optional<std::string> min_text_, max_text_;
  std::optional<Value> min_, max_;
  std::vector<std::string> choices_;
  std::vector<std::string> schemes_{"tcp", "ipc"};
};

// The declared keys of one program, in declaration order (which is the order of docs and example files).
class Schema {
 public:
  explicit Schema(std::string program);

  // Declares a key. The default is written as on a command line ("1s", "info", "5", "true", "").
  // Declaring the same name twice, or a name that is both a key and a table, is a programming error
  // that validate() reports.
  Key& add(std::string name, Type type, std::string default_text, std::string doc);

  const std::string& program() const { return program_; }
  const std::deque<Key>& keys() const { return keys_; }
  const Key* find(std::string_view name) const;
  // The declared name closest to a misspelt one, for "did you mean".
  std::optional<std::string> closest(std::string_view name) const;
  // Every default parses and meets its constraint; names are well formed and unique.
  Status validate() const;
  // The error text for a name that is not declared: "unknown key 'x' in the configuration of P", with
  // "(did you mean 'y'?)" when a declared name is close.
  std::string unknown_name(std::string_view name, bool table = false) const;

 private:
  std::string program_;
  std::deque<Key> keys_;  // deque: Key& handed out by add() stay valid
};

// Where a value came from: "default", "/etc/morph/morph-agent.toml:12:1" or "command line (--set)".
struct Origin {
  std::string where;
};

// One command-line override.
struct Override {
  std::string key;
  std::string value;
  std::string source;  // "--set", "--interval", ...
};

// The values of every declared key. Immutable once loaded; safe to read from any thread.
// The getters take a declared key of the matching type; anything else is a programming error and throws
// std::logic_error (caught in main like every other unrecoverable error).
class Config {
 public:
  const Schema& schema() const { return *schema_; }

  const std::string& get_string(std::string_view key) const;  // string, path, endpoint, listen, choice
  bool get_bool(std::string_view key) const;
  int64_t get_int(std::string_view key) const;
  std::chrono::nanoseconds get_duration(std::string_view key) const;
  uint64_t get_bytes(std::string_view key) const;

  const Value& value(std::string_view key) const;
  const Origin& origin(std::string_view key) const;
  // The value as it would be written in the file ("1s", "info", "5", "true").
  std::string text(std::string_view key) const;

  // Sets one key from text (an override). Errors name the key, the source and what was expected.
  Status set(const std::string& key, std::string_view text, const std::string& source);

 private:
  friend Result<Config> defaults(const Schema& schema);
  friend Result<Config> parse(const Schema&, std::string_view, const std::string&, const std::vector<Override>&);
  explicit Config(const Schema& schema) : schema_(&schema) {}
  const Key& declared(std::string_view key) const;

  const Schema* schema_;
  std::map<std::string, Value, std::less<>> values_;
  std::map<std::string, Origin, std::less<>> origins_;
};

// All defaults (fails only if the schema itself is wrong).
Result<Config> defaults(const Schema& schema);
// Defaults, then the TOML text (source_name names it in errors), then the overrides in order.
Result<Config> parse(const Schema& schema, std::string_view toml_text, const std::string& source_name,
                     const std::vector<Override>& overrides = {});
// Defaults, then the file if given (a missing file is an error: the operator asked for it), then the
// overrides in order.
Result<Config> load(const Schema& schema, const std::optional<std::filesystem::path>& file,
                    const std::vector<Override>& overrides = {});

// Command-line options that override keys, registered on a CLI11 app or subcommand:
//   --config PATH                the TOML file (add_config_option)
//   --set KEY=VALUE              any key, repeatable (add_set_option)
//   --interval 500ms             a typed flag bound to one key (add_flag)
// overrides() lists --set entries in command-line order, then the typed flags, so a typed flag wins over
// a --set of the same key. Must outlive app.parse(); not copyable.
class CommandLine {
 public:
  explicit CommandLine(const Schema& schema);
  CommandLine(const CommandLine&) = delete;
  CommandLine& operator=(const CommandLine&) = delete;

  CLI::Option* add_config_option(CLI::App& app, std::string default_path = {});
  CLI::Option* add_set_option(CLI::App& app);
  // The flag's help is the key's doc and default. The key must be declared (throws std::logic_error).
  CLI::Option* add_flag(CLI::App& app, const std::string& flag, const std::string& key);

  // The --config path (or the default given to add_config_option; empty → none).
  std::optional<std::filesystem::path> config_file() const;
  std::vector<Override> overrides() const;
  // load(schema, config_file(), overrides()).
  Result<Config> load() const;

 private:
  struct Bound {
    std::string flag;
    std::string key;
    std::vector<std::string> values;
  };
  const Schema* schema_;
  std::string default_path_;
  std::string config_path_;
  CLI::Option* config_opt_ = nullptr;
  std::vector<std::string> sets_;
  std::deque<Bound> bound_;  // deque: CLI11 holds pointers into it
};

// Markdown table of a schema's keys: | key | type | default | description |.
std::string render_markdown_table(const Schema& schema);
// An example TOML file holding every key at its default, each preceded by its doc as a comment.
std::string render_example_toml(const Schema& schema);

}  // namespace morph::config
