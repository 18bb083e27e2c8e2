#pragma once
// Escaping text for a format (a Prometheus label value or help text, a Markdown table cell, an XML
// attribute): each character that needs it replaced by its escape, from one table the caller gives. It
// knows no format's rules itself and never throws.

#include <algorithm>
#include <initializer_list>
#include <string>
#include <string_view>

namespace morph {

struct Escape {
  char c;
  std::string_view with;
};

// `text` with each character found in `table` replaced by its escape.
inline std::string escaped(std::string_view text, std::initializer_list<Escape> table) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    const auto* e = std::find_if(table.begin(), table.end(), [c](const Escape& x) { return x.c == c; });
    if (e != table.end())
      out += e->with;
    else
      out += c;
  }
  return out;
}

}  // namespace morph
