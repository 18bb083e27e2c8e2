#pragma once
// Test-tier prerequisites. A test that cannot run where it should must say why: outside CI it skips with
// the reason (and the test binary exits 77, which ctest shows as "Skipped"); under CI=true it fails.

#include <gtest/gtest.h>

#include <string>

namespace morph::test {

bool in_ci();
bool is_root();
// Empty when BPF programs can be loaded here (root, BTF, bpffs); otherwise the reason they cannot.
std::string bpf_unavailable_reason();
// Empty when qemu:///system answers; otherwise the reason.
std::string libvirtd_unavailable_reason();
// Source and build directories (from ctest's environment, falling back to the compiled-in paths).
std::string source_dir();
std::string binary_dir();

}  // namespace morph::test

#define MORPH_REQUIRE(reason_expr)                                                  \
  do {                                                                              \
    const std::string morph_reason_ = (reason_expr);                                \
    if (!morph_reason_.empty()) {                                                   \
      if (::morph::test::in_ci()) FAIL() << "required under CI: " << morph_reason_; \
      GTEST_SKIP() << morph_reason_;                                                \
    }                                                                               \
  } while (0)

#define MORPH_REQUIRE_ROOT() \
  MORPH_REQUIRE(::morph::test::is_root() ? std::string() : std::string("needs root (run as root or via scripts/test)"))
#define MORPH_REQUIRE_BPF() MORPH_REQUIRE(::morph::test::bpf_unavailable_reason())
#define MORPH_REQUIRE_LIBVIRTD() MORPH_REQUIRE(::morph::test::libvirtd_unavailable_reason())
