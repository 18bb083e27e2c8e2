#pragma once
// Files of a test: a whole file read at once, a file written atomically (as the test bed's control files
// must be: the reader never sees half a line), and a private temporary directory that goes away with its
// owner unless the test wants its contents kept for a look.

#include <filesystem>
#include <string>
#include <string_view>

namespace morph::test {

// The whole file; empty when it cannot be read.
std::string slurp(const std::filesystem::path& path);

// Writes `text` to a temporary file beside `path` and renames it over `path`; false on failure.
bool write_atomically(const std::filesystem::path& path, std::string_view text);

// A fresh directory /tmp/morph-TAG-XXXXXX, mode 0700, removed with everything in it on destruction
// unless keep() was called.
class TempDir {
 public:
  explicit TempDir(const std::string& tag);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  bool ok() const { return !path_.empty(); }
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }
  std::string str() const { return path_.string(); }
  // Leaves the directory in place (and says where on stderr) when `yes`: a failed test's logs.
  void keep(bool yes = true);

 private:
  std::filesystem::path path_;
  bool keep_ = false;
};

}  // namespace morph::test
