#include "tests/support/shell.h"

#include "tests/support/files.h"
#include "tests/support/process.h"

namespace morph::test {

ShellResult sh(const std::string& command, std::chrono::milliseconds timeout) {
  ShellResult r;
  TempDir dir("sh");
  if (!dir.ok()) {
    r.out = "cannot make a temporary directory for the output of: " + command;
    return r;
  }
  {
    ChildProcess p({"/bin/sh", "-c", command}, dir / "out",
                   {.merge_stderr = true, .own_group = true, .stop_signal = SIGKILL, .grace = {}});
    if (!p.started()) {
      r.out = "cannot start /bin/sh for: " + command;
      return r;
    }
    r.status = p.wait_exit(timeout);
    if (r.status < 0) p.kill9();
  }
  r.out = slurp(dir / "out");
  if (r.status < 0) r.out += "\n[killed after " + std::to_string(timeout.count()) + " ms: " + command + "]\n";
  return r;
}

}  // namespace morph::test
