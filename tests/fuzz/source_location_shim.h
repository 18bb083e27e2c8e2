#pragma once
// Force-included in the fuzz build only. clang 14 lacks __builtin_source_location, so libstdc++ 12's
// <source_location> is empty under it and common/error.h does not compile. This supplies the same
// interface from the older __builtin_FILE/__builtin_LINE builtins. Remove when CI's clang is 15 or later.
#if defined(__clang__) && !__has_builtin(__builtin_source_location)
#include <cstdint>
namespace std {
struct source_location {
  static constexpr source_location current(const char* file = __builtin_FILE(), const char* fn = __builtin_FUNCTION(),
                                           uint_least32_t line = __builtin_LINE(),
                                           uint_least32_t col = __builtin_COLUMN()) noexcept {
    source_location s;
    s.file_ = file;
    s.fn_ = fn;
    s.line_ = line;
    s.col_ = col;
    return s;
  }
  constexpr const char* file_name() const noexcept { return file_; }
  constexpr const char* function_name() const noexcept { return fn_; }
  constexpr uint_least32_t line() const noexcept { return line_; }
  constexpr uint_least32_t column() const noexcept { return col_; }

 private:
  const char* file_ = "";
  const char* fn_ = "";
  uint_least32_t line_ = 0, col_ = 0;
};
}  // namespace std
#endif
