// Reading a configuration: the TOML file checked key by key against the schema, then the command-line
// overrides (parse() and load() of common/config.h). Errors name the file, line and column.

#include <toml++/toml.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "common/config.h"

namespace morph::config {

namespace {

std::string position(const std::string& source, const toml::source_region& r) {
  return source + ":" + std::to_string(r.begin.line) + ":" + std::to_string(r.begin.column);
}

std::string describe_node(const toml::node& n) {
  if (n.is_table()) return "a table";
  if (n.is_array()) return "an array";
  if (n.is_string()) return "string " + toml_quote(n.as_string()->get());
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
      return Error(Errc::invalid_argument, position(source, where) + ": " + schema.unknown_name(name, node.is_table()));
    }
  }
  return {};
}

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

}  // namespace morph::config
