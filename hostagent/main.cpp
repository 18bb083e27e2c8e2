// morph-agent entry point: the command line is hostagent/cli/ (run, kpis, shift) over morph_agent_core.
#include "hostagent/cli/agent_cli.h"

int main(int argc, char** argv) {
  return morph::agent::cli::run_agent_cli(argc, argv);
}
