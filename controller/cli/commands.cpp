// `morphctl commands`: every leaf command, from the parsed-command tree itself, so that tests walking it
// (integration_cli_json) notice a new command without --json or an example.
#include "controller/cli/command.h"

namespace morph::cli {

namespace {

struct CommandsArgs {
  bool json = false;
};

int list_commands(Session& s, CLI::App& app, bool as_json) {
  json rows = json::array();
  for (auto& [path, cmd] : leaf_commands(app))
    rows.push_back({{"command", path},
                    {"json", cmd->get_option_no_throw("--json") != nullptr},
                    {"example", example_of(cmd)},
                    {"description", cmd->get_description()}});
  if (as_json)
    print(rows, true, s.out);
  else
    for (auto& r : rows) s.out << r["command"].get<std::string>() << "\n";
  return kOk;
}

}  // namespace

void add_commands(Commands& c) {
  CLI::App& app = c.app();
  auto list = verb<CommandsArgs>(&app, "commands", "list every command (leaf commands, as typed), with its example");
  c.on(list, {"morphctl commands", "morphctl commands --json"},
       [a = list.args, &app](Session& s) { return list_commands(s, app, a->json); });
}

}  // namespace morph::cli
