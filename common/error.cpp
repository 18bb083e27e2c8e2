#include "common/error.h"

#include <string_view>

#include "common/enum_names.h"

namespace morph {

namespace {
constexpr auto kErrcNames =
    enum_names<Errc::internal>({"invalid_argument", "not_found", "already_exists", "permission_denied", "unavailable",
                                "protocol", "io", "system", "conflict", "insufficient_funds", "internal"});
}  // namespace

const char* errc_name(Errc c) noexcept {
  return kErrcNames.name(c);
}

std::string Error::what() const {
  if (errno_ == 0) return message_;
  return message_ + ": " + std::strerror(errno_);
}

std::string Error::describe() const {
  std::string_view f(file_);
  if (auto pos = f.rfind('/'); pos != std::string_view::npos) {
    // Keep the last two path components: "probes/cpu_probe.cpp".
    auto prev = f.rfind('/', pos - 1);
    f.remove_prefix(prev == std::string_view::npos ? 0 : prev + 1);
  }
  return std::string("[") + errc_name(code_) + "] " + what() + " (" + std::string(f) + ":" + std::to_string(line_) +
         ")";
}

}  // namespace morph
