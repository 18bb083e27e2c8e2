#pragma once
// The one error style of Morph: recoverable failures travel as Result<T> holding an Error with a category,
// a message naming what was wrong, the errno where the OS gave one, and the file:line that raised it.
// Exceptions are reserved for the unrecoverable and are caught in each main().

#include <cerrno>
#include <cstring>
#include <source_location>
#include <string>
#include <utility>
#include <variant>

namespace morph {

enum class Errc {
  invalid_argument,  // bad input from a user or peer
  not_found,
  already_exists,
  permission_denied,
  unavailable,  // a dependency (libvirtd, kernel feature, peer) is not there right now
  protocol,     // a malformed or unverifiable message
  io,
  system,  // an OS call failed; sys_errno says why
  conflict,
  insufficient_funds,
  internal,
};

const char* errc_name(Errc c) noexcept;

class Error {
 public:
  Error(Errc code, std::string message, int sys_errno = 0, std::source_location where = std::source_location::current())
      : code_(code), message_(std::move(message)), errno_(sys_errno), file_(where.file_name()), line_(where.line()) {}

  // An OS failure: captures errno at the call site.
  static Error from_errno(std::string what, int err = errno,
                          std::source_location where = std::source_location::current()) {
    return Error(Errc::system, std::move(what), err, where);
  }

  Errc code() const noexcept { return code_; }
  const std::string& message() const noexcept { return message_; }
  int sys_errno() const noexcept { return errno_; }
  const char* file() const noexcept { return file_; }
  unsigned line() const noexcept { return line_; }

  // "message: strerror(errno)" — what an operator reads.
  std::string what() const;
  // what() plus category and origin, for logs.
  std::string describe() const;

  // Prefixes context, keeping the original origin: "loading probes: " + message.
  Error with_context(const std::string& context) && {
    message_ = context + ": " + message_;
    return std::move(*this);
  }

 private:
  Errc code_;
  std::string message_;
  int errno_;
  const char* file_;
  unsigned line_;
};

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT(google-explicit-constructor)
  Result(Error error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &std::get<0>(v_); }
  const T* operator->() const { return &std::get<0>(v_); }
  T& operator*() & { return std::get<0>(v_); }
  const T& operator*() const& { return std::get<0>(v_); }

  const Error& error() const& { return std::get<1>(v_); }
  Error&& error() && { return std::get<1>(std::move(v_)); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : err_(std::move(error)), ok_(false) {}  // NOLINT(google-explicit-constructor)
  bool ok() const noexcept { return ok_; }
  explicit operator bool() const noexcept { return ok_; }
  const Error& error() const& { return std::get<1>(err_); }
  Error&& error() && { return std::get<1>(std::move(err_)); }

 private:
  std::variant<std::monostate, Error> err_;
  bool ok_ = true;
};

using Status = Result<void>;

}  // namespace morph

// Propagate an error from an expression returning Result<...>.
#define MORPH_CONCAT_INNER(a, b) a##b
#define MORPH_CONCAT(a, b) MORPH_CONCAT_INNER(a, b)
#define MORPH_TRY(expr)                                             \
  do {                                                              \
    auto&& morph_try_r_ = (expr);                                   \
    if (!morph_try_r_.ok()) return std::move(morph_try_r_).error(); \
  } while (0)
#define MORPH_TRY_ASSIGN_IMPL(tmp, lhs, expr)   \
  auto tmp = (expr);                            \
  if (!tmp.ok()) return std::move(tmp).error(); \
  lhs = std::move(tmp).value()
#define MORPH_TRY_ASSIGN(lhs, expr) MORPH_TRY_ASSIGN_IMPL(MORPH_CONCAT(morph_try_, __LINE__), lhs, expr)
