// gtest main for every Morph test binary: exits 77 (ctest's "Skipped") when tests were skipped and none
// failed, so a skipped tier is visible in the ctest summary rather than counted as passed.
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <cstdlib>

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (const char* lvl = std::getenv("MORPH_TEST_LOG"))
    spdlog::set_level(spdlog::level::from_str(lvl));
  else
    spdlog::set_level(spdlog::level::warn);
  int rc = RUN_ALL_TESTS();
  if (rc == 0) {
    auto* ut = ::testing::UnitTest::GetInstance();
    if (ut->skipped_test_count() > 0 && ut->successful_test_count() == 0) return 77;
  }
  return rc;
}
