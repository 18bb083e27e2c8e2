#include "common/error.h"

#include <gtest/gtest.h>

namespace morph {
namespace {

Result<int> parse_positive(int v) {
  if (v <= 0) return Error(Errc::invalid_argument, "value " + std::to_string(v) + " is not positive");
  return v;
}

Result<int> doubled(int v) {
  MORPH_TRY_ASSIGN(int x, parse_positive(v));
  return 2 * x;
}

TEST(Error, CarriesMessageErrnoAndOrigin) {
  Error e = Error::from_errno("opening /nonexistent", ENOENT);
  EXPECT_EQ(e.code(), Errc::system);
  EXPECT_EQ(e.what(), std::string("opening /nonexistent: ") + std::strerror(ENOENT));
  EXPECT_NE(e.describe().find("error_test.cpp:"), std::string::npos) << e.describe();
  EXPECT_NE(e.describe().find("[system]"), std::string::npos);
}

TEST(Error, TryPropagatesAndContextPrefixes) {
  EXPECT_EQ(*doubled(4), 8);
  auto r = doubled(-1);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Errc::invalid_argument);
  Error ctx = std::move(r).error().with_context("reading config");
  EXPECT_EQ(ctx.what(), "reading config: value -1 is not positive");
}

}  // namespace
}  // namespace morph
