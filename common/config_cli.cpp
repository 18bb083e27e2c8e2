// The command-line side of a configuration: --config, --set KEY=VALUE and typed flags bound to keys,
// registered on a CLI11 app (CommandLine of common/config.h). It only collects text; checking it is load()'s.

#include <CLI/CLI.hpp>
#include <stdexcept>
#include <system_error>

#include "common/config.h"

namespace morph::config {

CommandLine::CommandLine(const Schema& schema) : schema_(&schema) {}

CLI::Option* CommandLine::add_config_option(CLI::App& app, std::string default_path) {
  default_path_ = std::move(default_path);
  std::string help = "TOML configuration file of " + schema_->program();
  if (!default_path_.empty()) help += " (default " + default_path_ + " if it exists)";
  config_opt_ = app.add_option("--config,-c", config_path_, help)->type_name("PATH");
  return config_opt_;
}

CLI::Option* CommandLine::add_set_option(CLI::App& app) {
  return app.add_option("--set", sets_, "override a configuration key, e.g. --set agent.interval=500ms (repeatable)")
      ->type_name("KEY=VALUE")
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
}

CLI::Option* CommandLine::add_flag(CLI::App& app, const std::string& flag, const std::string& key) {
  const Key* k = schema_->find(key);
  if (!k) throw std::logic_error("config flag " + flag + ": '" + key + "' is not a key of " + schema_->program());
  auto& b = bound_.emplace_back(Bound{flag, key, {}});
  std::string help =
      k->doc() + " [" + key + ", default " + (k->default_text().empty() ? "\"\"" : k->default_text()) + "]";
  return app.add_option(flag, b.values, help)
      ->type_name(k->type() == Type::choice ? "WORD" : "VALUE")
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
}

std::optional<std::filesystem::path> CommandLine::config_file() const {
  if (config_opt_ && config_opt_->count() > 0) return std::filesystem::path(config_path_);
  if (!default_path_.empty()) {
    std::error_code ec;
    if (std::filesystem::exists(default_path_, ec)) return std::filesystem::path(default_path_);
  }
  return std::nullopt;
}

std::vector<Override> CommandLine::overrides() const {
  std::vector<Override> out;
  for (const auto& s : sets_) {
    size_t eq = s.find('=');
    // A --set without '=' still goes through, so load() reports it with the key's expectation.
    if (eq == std::string::npos)
      out.push_back({s, "", "--set (no '=VALUE')"});
    else
      out.push_back({s.substr(0, eq), s.substr(eq + 1), "--set"});
  }
  for (const auto& b : bound_) {
    if (!b.values.empty()) out.push_back({b.key, b.values.back(), b.flag});
  }
  return out;
}

Result<Config> CommandLine::load() const {
  return config::load(*schema_, config_file(), overrides());
}

}  // namespace morph::config
