#pragma once
// Command lines of the test tree's own programs (benchmarks, test drivers): "--name value" pairs, each
// name one of the program's known flags. The values stay text; each program converts its own.

#include <map>
#include <string>
#include <vector>

namespace morph::test {

class Flags {
 public:
  Flags(int argc, char** argv, const std::vector<std::string>& known);
  // The first word that is not a known flag, or a flag without a value, said as an error; empty when none.
  const std::string& error() const { return error_; }
  bool has(const std::string& name) const { return values_.count(name) != 0; }
  // The value given for `name`, else `otherwise`.
  std::string text(const std::string& name, const std::string& otherwise = {}) const;
  long long number(const std::string& name, long long otherwise) const;  // strtoll of the text

 private:
  std::map<std::string, std::string> values_;
  std::string error_;
};

}  // namespace morph::test
