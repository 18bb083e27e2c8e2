#pragma once
// morph-agent's command line as a library (hostagent/main.cpp only calls run_agent_cli): `run`, `kpis`,
// `shift` and `migrate`, each in its own file and registered at one point, commands.def. A command's file adds its
// subcommand and options (its own option struct) and the action to run; the action runs once the command
// line parsed and logging is set up from --log-level.

#include <CLI/CLI.hpp>
#include <functional>

namespace morph::agent::cli {

// What a command's registration adds to: the app, and the action of the command the line chose.
class AgentCommands {
 public:
  explicit AgentCommands(CLI::App& app) : app_(app) {}
  CLI::App& app() { return app_; }
  void on(CLI::App* command, std::function<int()> action) {
    command->callback([this, action = std::move(action)] { chosen_ = action; });
  }
  const std::function<int()>& chosen() const { return chosen_; }

 private:
  CLI::App& app_;
  std::function<int()> chosen_;
};

// Parses argv and runs the chosen command (its exit code); with no command, prints the help.
int run_agent_cli(int argc, char** argv);

}  // namespace morph::agent::cli
