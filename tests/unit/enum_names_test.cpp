// common/enum_names.h: one list of an enum's names, read both ways; and the tables built on it keep the names
// Morph has always printed (logs, errors, the allow-list file, the config docs).
#include "common/enum_names.h"

#include <gtest/gtest.h>

#include "common/error.h"

namespace morph {
namespace {

enum class Colour { red, green, blue };
constexpr auto kColours = enum_names<Colour::blue>({"red", "green", "blue"});
static_assert(kColours.size() == 3);
static_assert(kColours.parse("green") == Colour::green, "usable at compile time");

TEST(EnumNames, NamesAndParsesEveryValue) {
  for (Colour c : {Colour::red, Colour::green, Colour::blue}) EXPECT_EQ(kColours.parse(kColours.name(c)), c);
  EXPECT_STREQ(kColours.name(Colour::blue), "blue");
}

TEST(EnumNames, AValueOutsideTheListGetsTheFallbackAndOtherTextParsesToNothing) {
  EXPECT_STREQ(kColours.name(static_cast<Colour>(3)), "unknown");
  EXPECT_STREQ(kColours.name(static_cast<Colour>(200), "?"), "?");
  EXPECT_EQ(kColours.parse("Red"), std::nullopt) << "names are exact";
  EXPECT_EQ(kColours.parse("gree"), std::nullopt);
  EXPECT_EQ(kColours.parse(""), std::nullopt);
}

TEST(EnumNames, ErrcNamesAreTheEnumerators) {
  EXPECT_STREQ(errc_name(Errc::invalid_argument), "invalid_argument");
  EXPECT_STREQ(errc_name(Errc::insufficient_funds), "insufficient_funds");
  EXPECT_STREQ(errc_name(Errc::internal), "internal");
  EXPECT_STREQ(errc_name(static_cast<Errc>(99)), "unknown");
}

}  // namespace
}  // namespace morph
