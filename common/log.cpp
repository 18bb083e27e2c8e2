#include "common/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

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

}  // namespace morph::log
