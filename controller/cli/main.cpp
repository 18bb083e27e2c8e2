// morphctl entry point: the commands are the morph_ctl_commands library (controller/cli/morphctl.h).
#include <iostream>

#include "controller/cli/morphctl.h"

int main(int argc, char** argv) {
  return morph::cli::run_morphctl(argc, argv, std::cout, std::cerr);
}
