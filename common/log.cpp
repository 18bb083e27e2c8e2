#include "common/log.h"

#include <bpf/libbpf.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdarg>
#include <cstdio>
#include <cstring>

namespace morph::log {

Status init(const std::string& level, const std::string& program) {
  auto lvl = spdlog::level::from_str(level);
  if (lvl == spdlog::level::off && level != "off") {
    return Error(Errc::invalid_argument,
                 "log level '" + level + "' is not one of trace, debug, info, warn, error, critical, off");
  }
  // Logs go to stderr so that stdout stays machine-readable (--json output).
  auto logger = spdlog::stderr_color_mt(program);
  spdlog::set_default_logger(logger);
  spdlog::set_level(lvl);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%-5l%$ %n: %v");
  return {};
}

namespace {
int libbpf_print(enum libbpf_print_level level, const char* fmt, va_list args) {
  char buf[1024];
  int n = std::vsnprintf(buf, sizeof(buf), fmt, args);
  if (n > 0 && buf[std::min<size_t>(n, sizeof(buf) - 1) - 1] == '\n') buf[std::min<size_t>(n, sizeof(buf) - 1) - 1] = 0;
  // The kernel's answer to creating a clsact qdisc that exists (NLM_F_EXCL), which libbpf prints as a
  // warning before returning -EEXIST; every caller here treats EEXIST as "already there".
  if (level == LIBBPF_WARN && std::strstr(buf, "Exclusivity flag on, cannot modify") != nullptr) level = LIBBPF_INFO;
  switch (level) {
    case LIBBPF_WARN:
      spdlog::warn("libbpf: {}", buf);
      break;
    case LIBBPF_INFO:
      spdlog::debug("libbpf: {}", buf);
      break;
    case LIBBPF_DEBUG:
      spdlog::trace("libbpf: {}", buf);
      break;
  }
  return n;
}
}  // namespace

void route_libbpf() {
  libbpf_set_print(libbpf_print);
}

}  // namespace morph::log
