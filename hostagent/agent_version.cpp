#include "hostagent/agent.h"

namespace morph::agent {
const char* version() {
  return "0.1.0";
}
}  // namespace morph::agent
