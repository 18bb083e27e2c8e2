#pragma once
// Shell commands of a test (scripts/testbed, virsh, virt-admin): run with /bin/sh -c, stdout and stderr
// captured together, killed with their whole process group when they outlast their timeout.

#include <chrono>
#include <string>

namespace morph::test {

struct ShellResult {
  int status = -1;  // the exit status; 128 + signal; -1 when it could not start or ran out of time
  std::string out;  // stdout and stderr, interleaved as written
  bool ok() const { return status == 0; }
  explicit operator bool() const { return ok(); }
};

ShellResult sh(const std::string& command, std::chrono::milliseconds timeout = std::chrono::minutes(5));

}  // namespace morph::test
