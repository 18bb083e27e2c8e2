#pragma once
// The text forms of configuration values that are not TOML's own: durations, byte sizes, ZeroMQ endpoints,
// HTTP listen addresses, and the TOML string literal. Parsing and formatting only: pure functions over
// text, no file, no environment, no schema (common/config.h checks values against the keys that declare
// them). Command lines and other modules use these parsers too, so a "1s" or a "64KiB" means one thing
// everywhere. Errors are Errc::invalid_argument and quote the text that was wrong.

#include <charconv>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "common/error.h"

namespace morph::config {

// "1s", "100ms", "5m", "250us", "1h", "1m30s" (units ns, us/µs, ms, s, m, h; fractions allowed).
Result<std::chrono::nanoseconds> parse_duration(std::string_view text);
// A duration given as a command-line value: as parse_duration, or a bare number of seconds ("30", "0.5").
Result<std::chrono::nanoseconds> parse_duration_arg(std::string_view text);
// The largest whole unit: "1h", "90s", "1500us".
std::string format_duration(std::chrono::nanoseconds d);
// 1048576, "64KiB", "1MiB", "2G" (K/M/G/T and KiB/MiB/GiB/TiB are powers of 1024).
Result<uint64_t> parse_bytes(std::string_view text);
// The largest whole binary unit: "64KiB", "1GiB"; a plain number when none divides.
std::string format_bytes(uint64_t b);
// "tcp://host:port" (port 0..65535 or *) or "ipc:///absolute/path", limited to the schemes given.
Status check_endpoint(std::string_view text, const std::vector<std::string>& schemes = {"tcp", "ipc"});
// "host:port" → {host, port}; host may be "", "0.0.0.0", a name or "[v6]".
struct ListenAddress {
  std::string host;
  uint16_t port = 0;
};
Result<ListenAddress> parse_listen(std::string_view text);

// A TOML basic string literal: quoted, with quotes, backslashes and control characters escaped.
std::string toml_quote(std::string_view s);

// A whole decimal number and nothing else (no sign for unsigned types, no spaces, no suffix).
template <class Int>
std::optional<Int> parse_int(std::string_view s) {
  Int v{};
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

}  // namespace morph::config
