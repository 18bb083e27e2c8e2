// printable(): peer-chosen bytes in a log line can neither break the line nor reach a terminal.
#include "common/printable.h"

#include <gtest/gtest.h>

namespace morph {
namespace {

TEST(Printable, KeepsPrintableAsciiAndEscapesEverythingElse) {
  EXPECT_EQ(printable("host-a:7711 role:name"), "host-a:7711 role:name");
  EXPECT_EQ(printable(std::string_view("a\nb\r\x1b[31m\0z", 11)), "a\\x0ab\\x0d\\x1b[31m\\x00z");
  EXPECT_EQ(printable("back\\slash"), "back\\\\slash");  // so an escape cannot be forged either
  EXPECT_EQ(printable("\xc3\xa9\x7f"), "\\xc3\\xa9\\x7f");
  EXPECT_EQ(printable(""), "");
}

TEST(Printable, BoundsTheLength) {
  std::string big(2000, 'x');
  EXPECT_EQ(printable(big, 4), "xxxx...(2000 bytes)");
  EXPECT_EQ(printable(big).size(), 512 + std::string("...(2000 bytes)").size());
}

}  // namespace
}  // namespace morph
