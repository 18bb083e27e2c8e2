// A schema as documentation: the Markdown key tables of docs/operations.md and the example files in
// config/ (render_markdown_table and render_example_toml of common/config.h). Unit tests keep both in step.

#include <algorithm>
#include <sstream>

#include "common/config.h"
#include "common/escape.h"

namespace morph::config {

namespace {

// The value as written in a TOML file.
std::string toml_literal(Type type, const Value& v) {
  if (type == Type::boolean || type == Type::integer) return format_value(v);
  if (type == Type::bytes) {
    uint64_t b = std::get<uint64_t>(v);
    std::string f = format_bytes(b);
    return f == std::to_string(b) ? f : toml_quote(f);
  }
  return toml_quote(format_value(v));
}

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
