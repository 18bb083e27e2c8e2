// Keys, schemas and the values of a loaded configuration (common/config.h): what a key accepts, checking a
// value against it, and the typed getters. Reading TOML is config_toml.cpp's, the command line
// config_cli.cpp's, the generated docs config_render.cpp's.

#include "common/config.h"

#include <algorithm>
#include <stdexcept>

#include "common/enum_names.h"

namespace morph::config {

namespace {

using std::chrono::nanoseconds;

bool is_name_part(std::string_view part) {
  if (part.empty() || !(part[0] >= 'a' && part[0] <= 'z')) return false;
  return std::all_of(part.begin(), part.end(),
                     [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'; });
}

bool is_key_name(std::string_view name) {
  size_t start = 0;
  while (true) {
    size_t dot = name.find('.', start);
    if (!is_name_part(name.substr(start, dot == std::string_view::npos ? dot : dot - start))) return false;
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

// Typed value from text, without the key's constraint.
Result<Value> parse_raw(Type type, std::string_view text) {
  switch (type) {
    case Type::boolean:
      if (text == "true") return Value(true);
      if (text == "false") return Value(false);
      return Error(Errc::invalid_argument, "not true or false");
    case Type::integer:
      if (auto v = parse_int<int64_t>(text)) return Value(*v);
      return Error(Errc::invalid_argument, "not an integer");
    case Type::duration: {
      auto d = parse_duration(text);
      if (!d) return std::move(d).error();
      return Value(*d);
    }
    case Type::bytes: {
      auto b = parse_bytes(text);
      if (!b) return std::move(b).error();
      return Value(*b);
    }
    default:
      // Text given in TOML quoting on a command line ("--set log.level=\"debug\"") means the same.
      if (text.size() >= 2 && text.front() == '"' && text.back() == '"') text = text.substr(1, text.size() - 2);
      return Value(std::string(text));
  }
}

// -1, 0, 1 for ordered types; 0 for anything else.
int compare(const Value& a, const Value& b) {
  auto cmp = [](auto x, auto y) { return x < y ? -1 : (y < x ? 1 : 0); };
  if (auto* x = std::get_if<int64_t>(&a)) return cmp(*x, std::get<int64_t>(b));
  if (auto* x = std::get_if<uint64_t>(&a)) return cmp(*x, std::get<uint64_t>(b));
  if (auto* x = std::get_if<nanoseconds>(&a)) return cmp(*x, std::get<nanoseconds>(b));
  return 0;
}

}  // namespace

std::string format_value(const Value& v) {
  if (auto* b = std::get_if<bool>(&v)) return *b ? "true" : "false";
  if (auto* i = std::get_if<int64_t>(&v)) return std::to_string(*i);
  if (auto* u = std::get_if<uint64_t>(&v)) return format_bytes(*u);
  if (auto* d = std::get_if<nanoseconds>(&v)) return format_duration(*d);
  return std::get<std::string>(v);
}

namespace {
constexpr auto kTypeNames = enum_names<Type::choice>(
    {"string", "path", "boolean", "integer", "duration", "bytes", "endpoint", "listen address", "choice"});
}  // namespace

const char* type_name(Type t) {
  return kTypeNames.name(t, "?");
}

// ---- Key ----

Key::Key(std::string name, Type type, std::string default_text, std::string doc)
    : name_(std::move(name)), type_(type), default_text_(std::move(default_text)), doc_(std::move(doc)) {}

Key& Key::min(std::string text) {
  min_text_ = text;
  if (auto v = parse_raw(type_, text)) min_ = *v;
  return *this;
}

Key& Key::max(std::string text) {
  max_text_ = text;
  if (auto v = parse_raw(type_, text)) max_ = *v;
  return *this;
}

Key& Key::choices(std::vector<std::string> words) {
  choices_ = std::move(words);
  return *this;
}

Key& Key::schemes(std::vector<std::string> allowed) {
  schemes_ = std::move(allowed);
  return *this;
}

namespace {
// What a value of each type looks like, for errors and the generated docs (endpoint and choice add their
// schemes and words).
constexpr auto kExpectations = enum_names<Type::choice>({"a string", "a path (string)", "true or false", "an integer",
                                                         "a duration like \"1s\", \"100ms\" or \"5m\"",
                                                         "a size like 1048576, \"64KiB\" or \"1MiB\"", "an endpoint",
                                                         "a listen address HOST:PORT (\"\" disables it)", "one of"});
}  // namespace

std::string Key::expectation() const {
  std::string e = kExpectations.name(type_, "");
  if (type_ == Type::endpoint) {
    std::string list;
    for (const auto& s : schemes_)
      list += (list.empty() ? "" : " or ") + (s == "tcp"   ? std::string("tcp://HOST:PORT")
                                              : s == "ipc" ? std::string("ipc:///PATH")
                                                           : s + "://...");
    e += " " + list;
  }
  if (type_ == Type::choice)
    for (size_t i = 0; i < choices_.size(); ++i) e += (i ? ", " : " ") + choices_[i];
  if (min_text_ && max_text_)
    e += " from " + *min_text_ + " to " + *max_text_;
  else if (min_text_)
    e += " of at least " + *min_text_;
  else if (max_text_)
    e += " of at most " + *max_text_;
  return e;
}

Status Key::check(const Value& v) const {
  auto fail = [&]() -> Status {
    return Error(Errc::invalid_argument, "expected " + expectation() + ", got " + format_value(v));
  };
  if (min_ && min_->index() == v.index() && compare(v, *min_) < 0) return fail();
  if (max_ && max_->index() == v.index() && compare(v, *max_) > 0) return fail();
  if (type_ == Type::choice) {
    if (std::find(choices_.begin(), choices_.end(), std::get<std::string>(v)) == choices_.end()) return fail();
  } else if (type_ == Type::endpoint) {
    if (auto st = check_endpoint(std::get<std::string>(v), schemes_); !st) {
      return Error(Errc::invalid_argument, "expected " + expectation() + ": " + st.error().message());
    }
  } else if (type_ == Type::listen) {
    const auto& s = std::get<std::string>(v);
    if (!s.empty() && !parse_listen(s)) return fail();
  }
  return {};
}

Result<Value> Key::parse_text(std::string_view text) const {
  auto v = parse_raw(type_, text);
  if (!v) {
    return Error(Errc::invalid_argument, "expected " + expectation() + ", got " + toml_quote(text));
  }
  MORPH_TRY(check(*v));
  return v;
}

// ---- Schema ----

Schema::Schema(std::string program) : program_(std::move(program)) {}

Key& Schema::add(std::string name, Type type, std::string default_text, std::string doc) {
  return keys_.emplace_back(std::move(name), type, std::move(default_text), std::move(doc));
}

const Key* Schema::find(std::string_view name) const {
  for (const auto& k : keys_) {
    if (k.name() == name) return &k;
  }
  return nullptr;
}

std::optional<std::string> Schema::closest(std::string_view name) const {
  std::optional<std::string> best;
  size_t best_d = std::max<size_t>(3, name.size() / 3) + 1;
  for (const auto& k : keys_) {
    size_t d = edit_distance(name, k.name());
    // A key named in the wrong table ("interval" for "agent.interval") is also a near miss.
    std::string_view last = std::string_view(k.name()).substr(k.name().rfind('.') + 1);
    std::string_view nlast = name.substr(name.rfind('.') + 1);
    if (last == nlast) d = std::min<size_t>(d, 1);
    if (d < best_d) {
      best_d = d;
      best = k.name();
    }
  }
  return best;
}

Status Schema::validate() const {
  for (size_t i = 0; i < keys_.size(); ++i) {
    const Key& k = keys_[i];
    auto bad = [&](const std::string& why) {
      return Error(Errc::internal, program_ + " schema: key '" + k.name() + "': " + why);
    };
    if (!is_key_name(k.name())) return bad("not a dotted lower_snake_case name");
    if (k.doc().empty()) return bad("no doc string");
    for (size_t j = 0; j < keys_.size(); ++j) {
      if (j == i) continue;
      if (keys_[j].name() == k.name()) return bad("declared twice");
      if (keys_[j].name().rfind(k.name() + ".", 0) == 0) return bad("is also a table of '" + keys_[j].name() + "'");
    }
    if (k.min_text_ && !k.min_) return bad("minimum '" + *k.min_text_ + "' is not a " + type_name(k.type()));
    if (k.max_text_ && !k.max_) return bad("maximum '" + *k.max_text_ + "' is not a " + type_name(k.type()));
    if (k.type() == Type::choice && k.choices_.empty()) return bad("a choice without choices");
    if (auto v = k.parse_text(k.default_text()); !v) return bad("default: " + v.error().message());
  }
  return {};
}

std::string Schema::unknown_name(std::string_view name, bool table) const {
  std::string m = std::string(table ? "unknown table '" : "unknown key '") + std::string(name) +
                  "' in the configuration of " + program_;
  if (auto c = closest(name)) m += " (did you mean '" + *c + "'?)";
  return m;
}

// ---- Config ----

const Key& Config::declared(std::string_view key) const {
  const Key* k = schema_->find(key);
  if (!k) throw std::logic_error("config: '" + std::string(key) + "' is not a key of " + schema_->program());
  return *k;
}

const Value& Config::value(std::string_view key) const {
  declared(key);
  return values_.find(key)->second;
}

const Origin& Config::origin(std::string_view key) const {
  declared(key);
  return origins_.find(key)->second;
}

std::string Config::text(std::string_view key) const {
  return format_value(value(key));
}

namespace {
template <class T>
const T& typed(const Value& v, std::string_view key, const char* want) {
  if (auto* p = std::get_if<T>(&v)) return *p;
  throw std::logic_error("config: key '" + std::string(key) + "' is not a " + want);
}
}  // namespace

const std::string& Config::get_string(std::string_view key) const {
  return typed<std::string>(value(key), key, "string");
}
bool Config::get_bool(std::string_view key) const {
  return typed<bool>(value(key), key, "boolean");
}
int64_t Config::get_int(std::string_view key) const {
  return typed<int64_t>(value(key), key, "integer");
}
nanoseconds Config::get_duration(std::string_view key) const {
  return typed<nanoseconds>(value(key), key, "duration");
}
uint64_t Config::get_bytes(std::string_view key) const {
  return typed<uint64_t>(value(key), key, "byte size");
}

Status Config::set(const std::string& key, std::string_view text, const std::string& source) {
  const Key* k = schema_->find(key);
  if (!k) return Error(Errc::invalid_argument, source + " " + key + ": " + schema_->unknown_name(key));
  auto v = k->parse_text(text);
  if (!v)
    return Error(Errc::invalid_argument, source + " " + key + "=" + std::string(text) + ": " + v.error().message());
  values_[key] = std::move(v).value();
  origins_[key] = Origin{"command line (" + source + ")"};
  return {};
}

Result<Config> defaults(const Schema& schema) {
  MORPH_TRY(schema.validate());
  Config c(schema);
  for (const auto& k : schema.keys()) {
    c.values_[k.name()] = *k.parse_text(k.default_text());
    c.origins_[k.name()] = Origin{"default"};
  }
  return c;
}

}  // namespace morph::config
