#include "common/config.h"

#include <toml++/toml.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>

#include "common/enum_names.h"
#include "common/escape.h"

namespace morph::config {

namespace {

using std::chrono::nanoseconds;

std::string quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

template <class Int>
std::optional<Int> parse_int(std::string_view s) {
  Int v{};
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

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

std::string format_value(const Value& v) {
  if (auto* b = std::get_if<bool>(&v)) return *b ? "true" : "false";
  if (auto* i = std::get_if<int64_t>(&v)) return std::to_string(*i);
  if (auto* u = std::get_if<uint64_t>(&v)) return format_bytes(*u);
  if (auto* d = std::get_if<nanoseconds>(&v)) return format_duration(*d);
  return std::get<std::string>(v);
}

// The value as written in a TOML file.
std::string toml_literal(Type type, const Value& v) {
  if (type == Type::boolean || type == Type::integer) return format_value(v);
  if (type == Type::bytes) {
    uint64_t b = std::get<uint64_t>(v);
    std::string f = format_bytes(b);
    return f == std::to_string(b) ? f : quote(f);
  }
  return quote(format_value(v));
}

std::string position(const std::string& source, const toml::source_region& r) {
  return source + ":" + std::to_string(r.begin.line) + ":" + std::to_string(r.begin.column);
}

std::string describe_node(const toml::node& n) {
  if (n.is_table()) return "a table";
  if (n.is_array()) return "an array";
  if (n.is_string()) return "string " + quote(n.as_string()->get());
  std::ostringstream os;
  n.visit([&](auto&& v) { os << v; });
  std::string s = os.str();
  const char* kind = n.is_integer() ? "integer " : n.is_floating_point() ? "float " : n.is_boolean() ? "boolean " : "";
  return kind + s;
}

Result<Value> from_node(const Key& key, const toml::node& n) {
  auto wrong = [&]() -> Result<Value> {
    return Error(Errc::invalid_argument, "expected " + key.expectation() + ", got " + describe_node(n));
  };
  Result<Value> v = Error(Errc::internal, "unset");
  switch (key.type()) {
    case Type::boolean:
      if (!n.is_boolean()) return wrong();
      v = Value(n.as_boolean()->get());
      break;
    case Type::integer:
      if (!n.is_integer()) return wrong();
      v = Value(n.as_integer()->get());
      break;
    case Type::bytes:
      if (n.is_integer()) {
        int64_t i = n.as_integer()->get();
        if (i < 0) return wrong();
        v = Value(static_cast<uint64_t>(i));
      } else if (n.is_string()) {
        auto b = parse_bytes(n.as_string()->get());
        if (!b) return wrong();
        v = Value(*b);
      } else {
        return wrong();
      }
      break;
    case Type::duration: {
      if (!n.is_string()) return wrong();
      auto d = parse_duration(n.as_string()->get());
      if (!d) return wrong();
      v = Value(*d);
      break;
    }
    default:
      if (!n.is_string()) return wrong();
      v = Value(std::string(n.as_string()->get()));
  }
  if (auto st = key.check(*v); !st) return wrong();
  return v;
}

bool has_table(const Schema& schema, const std::string& prefix) {
  std::string p = prefix + ".";
  return std::any_of(schema.keys().begin(), schema.keys().end(),
                     [&](const Key& k) { return k.name().compare(0, p.size(), p) == 0; });
}

std::string unknown_key_message(const Schema& schema, const std::string& name, bool table = false) {
  std::string m =
      std::string(table ? "unknown table '" : "unknown key '") + name + "' in the configuration of " + schema.program();
  if (auto c = schema.closest(name)) m += " (did you mean '" + *c + "'?)";
  return m;
}

Status apply_table(const Schema& schema, const toml::table& table, const std::string& prefix, const std::string& source,
                   std::map<std::string, Value, std::less<>>& values,
                   std::map<std::string, Origin, std::less<>>& origins) {
  for (auto&& [k, node] : table) {
    std::string name = prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
    if (const Key* key = schema.find(name)) {
      auto v = from_node(*key, node);
      if (!v)
        return Error(Errc::invalid_argument,
                     position(source, node.source()) + ": " + name + ": " + v.error().message());
      values[name] = std::move(v).value();
      origins[name] = Origin{position(source, node.source())};
    } else if (node.is_table() && has_table(schema, name)) {
      MORPH_TRY(apply_table(schema, *node.as_table(), name, source, values, origins));
    } else {
      const auto& where = k.source().begin.line ? k.source() : node.source();
      return Error(Errc::invalid_argument,
                   position(source, where) + ": " + unknown_key_message(schema, name, node.is_table()));
    }
  }
  return {};
}

}  // namespace

namespace {
constexpr auto kTypeNames = enum_names<Type::choice>(
    {"string", "path", "boolean", "integer", "duration", "bytes", "endpoint", "listen address", "choice"});
}  // namespace

const char* type_name(Type t) {
  return kTypeNames.name(t, "?");
}

// ---- parsers ----

Result<nanoseconds> parse_duration(std::string_view text) {
  auto bad = [&]() -> Result<nanoseconds> {
    return Error(Errc::invalid_argument,
                 "'" + std::string(text) + "' is not a duration like \"1s\", \"100ms\" or \"5m\"");
  };
  if (text.empty()) return bad();
  long double total = 0;
  size_t i = 0;
  while (i < text.size()) {
    size_t start = i;
    while (i < text.size() && ((text[i] >= '0' && text[i] <= '9') || text[i] == '.')) ++i;
    std::string number(text.substr(start, i - start));
    if (number.empty() || std::count(number.begin(), number.end(), '.') > 1 || number.front() == '.' ||
        number.back() == '.') {
      return bad();
    }
    size_t ustart = i;
    while (i < text.size() && !((text[i] >= '0' && text[i] <= '9') || text[i] == '.')) ++i;
    std::string_view unit = text.substr(ustart, i - ustart);
    long double scale;
    if (unit == "ns")
      scale = 1;
    else if (unit == "us" || unit == "µs")
      scale = 1e3L;
    else if (unit == "ms")
      scale = 1e6L;
    else if (unit == "s")
      scale = 1e9L;
    else if (unit == "m")
      scale = 60e9L;
    else if (unit == "h")
      scale = 3600e9L;
    else
      return bad();
    total += std::stold(number) * scale;
  }
  if (total > 9.2e18L) return bad();
  return nanoseconds(static_cast<int64_t>(std::llround(total)));
}

Result<nanoseconds> parse_duration_arg(std::string_view text) {
  const bool bare = !text.empty() && text.find_first_not_of("0123456789.") == std::string_view::npos;
  if (!bare) return parse_duration(text);
  auto d = parse_duration(std::string(text) + "s");
  if (!d) return parse_duration(text);  // the error names the text as given
  return d;
}

std::string format_duration(nanoseconds d) {
  int64_t ns = d.count();
  if (ns == 0) return "0s";
  struct Unit {
    int64_t scale;
    const char* name;
  };
  static constexpr Unit units[] = {{3'600'000'000'000, "h"}, {60'000'000'000, "m"}, {1'000'000'000, "s"},
                                   {1'000'000, "ms"},        {1'000, "us"},         {1, "ns"}};
  for (const auto& u : units) {
    if (ns % u.scale == 0) return std::to_string(ns / u.scale) + u.name;
  }
  return std::to_string(ns) + "ns";
}

Result<uint64_t> parse_bytes(std::string_view text) {
  auto bad = [&]() -> Result<uint64_t> {
    return Error(Errc::invalid_argument,
                 "'" + std::string(text) + "' is not a size like 1048576, \"64KiB\" or \"1MiB\"");
  };
  size_t i = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i;
  auto n = parse_int<uint64_t>(text.substr(0, i));
  if (!n) return bad();
  std::string_view unit = text.substr(i);
  while (!unit.empty() && unit.front() == ' ') unit.remove_prefix(1);
  int shift;
  if (unit.empty() || unit == "B")
    shift = 0;
  else if (unit == "K" || unit == "KiB" || unit == "k")
    shift = 10;
  else if (unit == "M" || unit == "MiB")
    shift = 20;
  else if (unit == "G" || unit == "GiB")
    shift = 30;
  else if (unit == "T" || unit == "TiB")
    shift = 40;
  else
    return bad();
  if (shift && *n > (UINT64_MAX >> shift)) return bad();
  return *n << shift;
}

std::string format_bytes(uint64_t b) {
  static constexpr std::pair<int, const char*> units[] = {{40, "TiB"}, {30, "GiB"}, {20, "MiB"}, {10, "KiB"}};
  if (b != 0) {
    for (auto [shift, name] : units) {
      if (b % (uint64_t{1} << shift) == 0) return std::to_string(b >> shift) + name;
    }
  }
  return std::to_string(b);
}

Status check_endpoint(std::string_view text, const std::vector<std::string>& schemes) {
  auto allowed = [&](const char* s) { return std::find(schemes.begin(), schemes.end(), s) != schemes.end(); };
  std::string t(text);
  if (t.rfind("tcp://", 0) == 0 && allowed("tcp")) {
    std::string rest = t.substr(6);
    size_t colon = rest.rfind(':');
    if (colon == std::string::npos || colon == 0) {
      return Error(Errc::invalid_argument, "'" + t + "' has no host:port after tcp://");
    }
    std::string port = rest.substr(colon + 1);
    auto p = parse_int<uint32_t>(port);
    if (port != "*" && (!p || *p > 65535)) {
      return Error(Errc::invalid_argument, "'" + t + "' has no valid port (0..65535 or *)");
    }
    return {};
  }
  if (t.rfind("ipc://", 0) == 0 && allowed("ipc")) {
    if (t.size() <= 7 || t[6] != '/') {
      return Error(Errc::invalid_argument, "'" + t + "' is not ipc:// followed by an absolute path");
    }
    return {};
  }
  std::string list;
  for (const auto& s : schemes) list += (list.empty() ? "" : " or ") + s + "://";
  return Error(Errc::invalid_argument, "'" + t + "' is not a " + list + " endpoint");
}

Result<ListenAddress> parse_listen(std::string_view text) {
  auto bad = [&]() -> Result<ListenAddress> {
    return Error(Errc::invalid_argument, "'" + std::string(text) + "' is not a listen address HOST:PORT");
  };
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return bad();
  ListenAddress a;
  std::string_view host = text.substr(0, colon);
  if (!host.empty() && host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') return bad();
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    return bad();  // a bare IPv6 address needs brackets
  }
  auto port = parse_int<uint32_t>(text.substr(colon + 1));
  if (!port || *port > 65535) return bad();
  a.host = std::string(host);
  a.port = static_cast<uint16_t>(*port);
  return a;
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
    return Error(Errc::invalid_argument, "expected " + expectation() + ", got " + quote(text));
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
  if (!k) return Error(Errc::invalid_argument, source + " " + key + ": " + unknown_key_message(*schema_, key));
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

namespace {
Status apply_overrides(Config& c, const std::vector<Override>& overrides) {
  for (const auto& o : overrides) MORPH_TRY(c.set(o.key, o.value, o.source));
  return {};
}
}  // namespace

Result<Config> parse(const Schema& schema, std::string_view toml_text, const std::string& source_name,
                     const std::vector<Override>& overrides) {
  MORPH_TRY_ASSIGN(Config c, defaults(schema));
  toml::table t;
  try {
    t = toml::parse(toml_text, source_name);
  } catch (const toml::parse_error& e) {
    return Error(Errc::invalid_argument,
                 position(source_name, e.source()) + ": TOML syntax error: " + std::string(e.description()));
  }
  MORPH_TRY(apply_table(schema, t, "", source_name, c.values_, c.origins_));
  MORPH_TRY(apply_overrides(c, overrides));
  return c;
}

Result<Config> load(const Schema& schema, const std::optional<std::filesystem::path>& file,
                    const std::vector<Override>& overrides) {
  if (!file) {
    MORPH_TRY_ASSIGN(Config c, defaults(schema));
    MORPH_TRY(apply_overrides(c, overrides));
    return c;
  }
  std::ifstream in(*file, std::ios::binary);
  if (!in) return Error(Errc::invalid_argument, "cannot read configuration file " + file->string(), errno);
  std::stringstream ss;
  ss << in.rdbuf();
  return parse(schema, ss.str(), file->string(), overrides);
}

// ---- command line ----

CommandLine::CommandLine(const Schema& schema) : schema_(&schema) {}

CLI::Option* CommandLine::add_config_option(CLI::App& app, std::string default_path) {
  default_path_ = std::move(default_path);
  std::string help = "TOML configuration file of " + schema_->program();
  if (!default_path_.empty()) help += " (default " + default_path_ + " if it exists)";
  config_opt_ = app.add_option("--config,-c", config_path_, help)->type_name("PATH");
  return config_opt_;
}

CLI::Option* CommandLine::add_set_option(CLI::App& app) {
  return app.add_option("--set", sets_, "override a configuration key, e.g. --set agent.interval=500ms (repeatable)")
      ->type_name("KEY=VALUE")
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
}

CLI::Option* CommandLine::add_flag(CLI::App& app, const std::string& flag, const std::string& key) {
  const Key* k = schema_->find(key);
  if (!k) throw std::logic_error("config flag " + flag + ": '" + key + "' is not a key of " + schema_->program());
  auto& b = bound_.emplace_back(Bound{flag, key, {}});
  std::string help =
      k->doc() + " [" + key + ", default " + (k->default_text().empty() ? "\"\"" : k->default_text()) + "]";
  return app.add_option(flag, b.values, help)
      ->type_name(k->type() == Type::choice ? "WORD" : "VALUE")
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
}

std::optional<std::filesystem::path> CommandLine::config_file() const {
  if (config_opt_ && config_opt_->count() > 0) return std::filesystem::path(config_path_);
  if (!default_path_.empty()) {
    std::error_code ec;
    if (std::filesystem::exists(default_path_, ec)) return std::filesystem::path(default_path_);
  }
  return std::nullopt;
}

std::vector<Override> CommandLine::overrides() const {
  std::vector<Override> out;
  for (const auto& s : sets_) {
    size_t eq = s.find('=');
    // A --set without '=' still goes through, so load() reports it with the key's expectation.
    if (eq == std::string::npos)
      out.push_back({s, "", "--set (no '=VALUE')"});
    else
      out.push_back({s.substr(0, eq), s.substr(eq + 1), "--set"});
  }
  for (const auto& b : bound_) {
    if (!b.values.empty()) out.push_back({b.key, b.values.back(), b.flag});
  }
  return out;
}

Result<Config> CommandLine::load() const {
  return config::load(*schema_, config_file(), overrides());
}

// ---- rendering ----

namespace {

std::string type_cell(const Key& k) {
  std::string t = type_name(k.type());
  if (k.type() == Type::choice) {
    // expectation() is "one of a, b, c"
    std::string words = k.expectation().substr(7);
    t = "one of ";
    size_t start = 0;
    while (true) {
      size_t comma = words.find(", ", start);
      t += "`" + words.substr(start, comma == std::string::npos ? comma : comma - start) + "`";
      if (comma == std::string::npos) break;
      t += ", ";
      start = comma + 2;
    }
    return t;
  }
  std::string e = k.expectation();
  for (const char* marker : {" from ", " of at least ", " of at most "}) {
    size_t p = e.rfind(marker);
    if (p == std::string::npos) continue;
    std::string range = e.substr(p + std::string(marker).size());
    if (std::string(marker) == " from ") {
      size_t to = range.find(" to ");
      return t + " " + range.substr(0, to) + " – " + range.substr(to + 4);
    }
    return t + (std::string(marker) == " of at least " ? " ≥ " : " ≤ ") + range;
  }
  return t;
}

std::string cell(const std::string& s) {
  return escaped(s, {{'|', "\\|"}, {'<', "&lt;"}, {'>', "&gt;"}, {'\n', " "}});
}

// Splits text into comment lines of at most width characters.
std::string wrap_comment(const std::string& text, size_t width) {
  std::string out, line;
  std::istringstream words(text);
  std::string w;
  while (words >> w) {
    if (!line.empty() && line.size() + 1 + w.size() > width) {
      out += "# " + line + "\n";
      line.clear();
    }
    line += (line.empty() ? "" : " ") + w;
  }
  if (!line.empty()) out += "# " + line + "\n";
  return out;
}

}  // namespace

std::string render_markdown_table(const Schema& schema) {
  std::string out = "| key | type | default | description |\n|---|---|---|---|\n";
  for (const auto& k : schema.keys()) {
    out += "| `" + k.name() + "` | " + cell(type_cell(k)) + " | `" +
           toml_literal(k.type(), *k.parse_text(k.default_text())) + "` | " + cell(k.doc()) + " |\n";
  }
  return out;
}

std::string render_example_toml(const Schema& schema) {
  std::string out = "# Configuration of " + schema.program() +
                    ": every key at its default. Generated from common/config_schemas.cpp;\n"
                    "# the key tables of docs/operations.md come from the same place. Values given on the\n"
                    "# command line (--set KEY=VALUE, or the key's own flag) override this file.\n";
  // Tables in the order their first key is declared; top-level keys first.
  std::vector<std::string> tables;
  for (const auto& k : schema.keys()) {
    size_t dot = k.name().rfind('.');
    std::string table = dot == std::string::npos ? "" : k.name().substr(0, dot);
    if (std::find(tables.begin(), tables.end(), table) == tables.end()) tables.push_back(table);
  }
  std::stable_partition(tables.begin(), tables.end(), [](const std::string& t) { return t.empty(); });
  for (const auto& table : tables) {
    out += "\n";
    if (!table.empty()) out += "[" + table + "]\n";
    for (const auto& k : schema.keys()) {
      size_t dot = k.name().rfind('.');
      std::string kt = dot == std::string::npos ? "" : k.name().substr(0, dot);
      if (kt != table) continue;
      bool plain = k.type() == Type::string || k.type() == Type::path;
      out += wrap_comment(plain ? k.doc() : k.doc() + " Value: " + k.expectation() + ".", 98);
      out += k.name().substr(dot == std::string::npos ? 0 : dot + 1) + " = " +
             toml_literal(k.type(), *k.parse_text(k.default_text())) + "\n";
    }
  }
  return out;
}

}  // namespace morph::config
