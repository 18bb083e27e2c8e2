#include "common/error.h"

#include <string_view>

namespace morph {

const char* errc_name(Errc c) noexcept {
  switch (c) {
    case Errc::invalid_argument:
      return "invalid_argument";
    case Errc::not_found:
      return "not_found";
    case Errc::already_exists:
      return "already_exists";
    case Errc::permission_denied:
      return "permission_denied";
    case Errc::unavailable:
      return "unavailable";
    case Errc::protocol:
      return "protocol";
    case Errc::io:
      return "io";
    case Errc::system:
      return "system";
    case Errc::conflict:
      return "conflict";
    case Errc::insufficient_funds:
      return "insufficient_funds";
    case Errc::internal:
      return "internal";
  }
  return "unknown";
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
