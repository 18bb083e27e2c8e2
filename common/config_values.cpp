// The text forms of durations, byte sizes, endpoints and listen addresses (common/config_values.h).

#include "common/config_values.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace morph::config {

using std::chrono::nanoseconds;

std::string toml_quote(std::string_view s) {
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

}  // namespace morph::config
