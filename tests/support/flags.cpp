#include "tests/support/flags.h"

#include <algorithm>
#include <cstdlib>

namespace morph::test {

Flags::Flags(int argc, char** argv, const std::vector<std::string>& known) {
  for (int i = 1; i < argc; i += 2) {
    const std::string name = argv[i];
    if (std::find(known.begin(), known.end(), name) == known.end()) {
      if (error_.empty()) error_ = "unknown option " + name;
    } else if (i + 1 >= argc) {
      if (error_.empty()) error_ = name + " needs a value";
    } else {
      values_[name] = argv[i + 1];
    }
  }
}

std::string Flags::text(const std::string& name, const std::string& otherwise) const {
  auto it = values_.find(name);
  return it == values_.end() ? otherwise : it->second;
}

long long Flags::number(const std::string& name, long long otherwise) const {
  auto it = values_.find(name);
  return it == values_.end() ? otherwise : std::strtoll(it->second.c_str(), nullptr, 10);
}

}  // namespace morph::test
