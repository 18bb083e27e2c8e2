#include "controller/forecast/cli/trace.h"

#include <zlib.h>

#include <charconv>
#include <cmath>
#include <limits>
#include <memory>
#include <string_view>
#include <unordered_map>

namespace morph::forecast {

namespace {

constexpr std::string_view kHeader = "vm,step,cpu_pct";

struct GzCloser {
  void operator()(gzFile f) const { gzclose(f); }
};
using GzHandle = std::unique_ptr<gzFile_s, GzCloser>;

Error row_error(const std::string& path, size_t line, const std::string& what) {
  return Error(Errc::invalid_argument, path + ":" + std::to_string(line) + ": " + what);
}

// Reads one line into `out` (without its newline). False at the end of the file; an Error if zlib failed
// (a corrupt or truncated gzip stream).
Result<bool> read_line(gzFile f, const std::string& path, size_t line, std::string& out) {
  out.clear();
  char buf[4096];
  while (true) {
    if (gzgets(f, buf, sizeof buf) == nullptr) {
      int zerr = Z_OK;
      const char* msg = gzerror(f, &zerr);
      if (zerr != Z_OK && zerr != Z_STREAM_END) {
        return Error(Errc::io, path + ":" + std::to_string(line) + ": cannot read: " + (msg ? msg : "zlib error"));
      }
      if (!gzeof(f)) return Error(Errc::io, path + ":" + std::to_string(line) + ": cannot read");
      return !out.empty();
    }
    out += buf;
    if (!out.empty() && out.back() == '\n') {
      out.pop_back();
      if (!out.empty() && out.back() == '\r') out.pop_back();
      return true;
    }
  }
}

template <class T>
bool parse_number(std::string_view s, T& out) {
  const auto* end = s.data() + s.size();
  const auto r = std::from_chars(s.data(), end, out);
  return r.ec == std::errc() && r.ptr == end;
}

}  // namespace

size_t Trace::steps() const {
  size_t n = 0;
  for (const auto& v : cpu_pct) n = std::max(n, v.size());
  return n;
}

Result<Trace> read_trace(const std::string& path, TraceLimits limits) {
  errno = 0;
  GzHandle f(gzopen(path.c_str(), "rb"));
  if (!f) {
    const int err = errno;
    return Error(err == ENOENT ? Errc::not_found : Errc::io, "cannot open trace " + path, err);
  }
  Trace trace;
  std::unordered_map<std::string, size_t> index;
  // Per VM and step, the line that set it (0: not yet), to name both lines of a repeated step.
  std::vector<std::vector<size_t>> line_of;
  std::string text;
  size_t line = 0;
  while (true) {
    ++line;
    MORPH_TRY_ASSIGN(const bool more, read_line(f.get(), path, line, text));
    if (!more) break;
    if (line == 1) {
      if (text != kHeader) {
        return row_error(path, line, "expected the header '" + std::string(kHeader) + "', found '" + text + "'");
      }
      continue;
    }
    if (text.empty()) return row_error(path, line, "empty line");
    const size_t c1 = text.find(',');
    const size_t c2 = c1 == std::string::npos ? c1 : text.find(',', c1 + 1);
    if (c2 == std::string::npos || text.find(',', c2 + 1) != std::string::npos) {
      return row_error(path, line, "expected 3 fields vm,step,cpu_pct, found '" + text + "'");
    }
    const std::string vm = text.substr(0, c1);
    const std::string_view step_text = std::string_view(text).substr(c1 + 1, c2 - c1 - 1);
    const std::string_view pct_text = std::string_view(text).substr(c2 + 1);
    if (vm.empty()) return row_error(path, line, "empty vm name");
    long step = 0;
    if (!parse_number(step_text, step)) {
      return row_error(path, line, "step '" + std::string(step_text) + "' is not an integer");
    }
    if (step < 0 || step >= limits.steps) {
      return row_error(path, line,
                       "step " + std::to_string(step) + " out of range 0.." + std::to_string(limits.steps - 1));
    }
    double pct = 0;
    if (!parse_number(pct_text, pct) || !std::isfinite(pct)) {
      return row_error(path, line, "cpu_pct '" + std::string(pct_text) + "' is not a number");
    }
    if (pct < 0 || pct > 100) {
      return row_error(path, line, "cpu_pct " + std::string(pct_text) + " out of range 0..100");
    }
    auto [it, added] = index.try_emplace(vm, trace.vms.size());
    if (added) {
      trace.vms.push_back(vm);
      trace.cpu_pct.emplace_back();
      line_of.emplace_back();
    }
    auto& series = trace.cpu_pct[it->second];
    auto& lines = line_of[it->second];
    const auto s = static_cast<size_t>(step);
    if (s >= series.size()) {
      series.resize(s + 1, std::numeric_limits<double>::quiet_NaN());
      lines.resize(s + 1, 0);
    }
    if (lines[s] != 0) {
      return row_error(path, line,
                       "vm " + vm + " step " + std::to_string(step) + " repeats line " + std::to_string(lines[s]));
    }
    series[s] = pct;
    lines[s] = line;
  }
  if (line <= 1) return Error(Errc::invalid_argument, path + ": empty trace (no header)");
  if (trace.vms.empty()) return Error(Errc::invalid_argument, path + ": no rows after the header");
  // A gap is named at the first row after it: the row that shows the step before it is missing.
  for (size_t v = 0; v < trace.vms.size(); ++v) {
    const auto& lines = line_of[v];
    for (size_t s = 0; s < lines.size(); ++s) {
      if (lines[s] != 0) continue;
      size_t next = s + 1;
      while (lines[next] == 0) ++next;  // the last step always has a line
      return row_error(
          path, lines[next],
          "vm " + trace.vms[v] + " step " + std::to_string(next) + " follows no row for step " + std::to_string(s));
    }
  }
  return trace;
}

}  // namespace morph::forecast
