#pragma once
// The printed names of an enum whose values run 0, 1, 2, ... in declaration order: one constexpr list,
// read both ways (name() for logs, errors and wire text; parse() for what a user or a file says), so no
// switch or if-chain repeats the enumerators. enum_names<Last>() checks at compile time that the list has a
// name for every value up to Last. It never allocates and never throws.

#include <cstddef>
#include <optional>
#include <string_view>
#include <type_traits>

namespace morph {

template <class E, std::size_t N>
class EnumNames {
  static_assert(std::is_enum_v<E>);

 public:
  // names[i] is the name of static_cast<E>(i).
  constexpr explicit EnumNames(const char* const (&names)[N]) {
    for (std::size_t i = 0; i < N; ++i) names_[i] = names[i];
  }
  // The name of `e`; `otherwise` for a value outside the list (a corrupt or newer value).
  constexpr const char* name(E e, const char* otherwise = "unknown") const noexcept {
    const auto i = static_cast<std::size_t>(static_cast<std::underlying_type_t<E>>(e));
    return i < N ? names_[i] : otherwise;
  }
  // The value named exactly `text`; nullopt for any other text.
  constexpr std::optional<E> parse(std::string_view text) const noexcept {
    for (std::size_t i = 0; i < N; ++i)
      if (text == names_[i]) return static_cast<E>(i);
    return std::nullopt;
  }
  static constexpr std::size_t size() noexcept { return N; }

 private:
  const char* names_[N] = {};
};

// The names of Last's enum, from its first value to Last: enum_names<Errc::internal>({"invalid_argument", ...}).
template <auto Last, std::size_t N>
constexpr EnumNames<decltype(Last), N> enum_names(const char* const (&names)[N]) {
  using E = decltype(Last);
  static_assert(static_cast<std::size_t>(static_cast<std::underlying_type_t<E>>(Last)) + 1 == N,
                "one name for every value of the enum, in declaration order");
  return EnumNames<E, N>(names);
}

}  // namespace morph
