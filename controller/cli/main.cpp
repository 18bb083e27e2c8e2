// morphctl: noun-verb command line for operators and tenants; talks to the controller's api endpoint.
#include <CLI/CLI.hpp>

int main(int argc, char** argv) {
  CLI::App app{"morphctl: operate and trade on a Morph controller"};
  app.set_version_flag("--version", "0.1.0");
  CLI11_PARSE(app, argc, argv);
  std::cout << app.help();
  return 0;
}
