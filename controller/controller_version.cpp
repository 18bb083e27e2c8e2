#include "controller/controller.h"

namespace morph::controller {
const char* version() {
  return "0.1.0";
}
}  // namespace morph::controller
