#include "controller/cli/command.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <ostream>

#include "common/msg/socket.h"
#include "common/resource.h"

namespace morph::cli {

void fail(int code, std::string message) {
  throw CommandError{code, std::move(message)};
}

const v1::ApiReply& Client::call(v1::ApiRequestBody type,
                                 const std::function<flatbuffers::Offset<void>(Builder&)>& build, int attempts) {
  msg::ClientSecurity sec;
  if (!conn_.key_file.empty() || !conn_.server_key_file.empty()) {
    auto loaded = msg::load_client_security({conn_.key_file, conn_.server_key_file});
    if (!loaded) fail(kUsage, loaded.error().what());
    sec = std::move(*loaded);
  } else if (msg::is_tcp(conn_.connect)) {
    fail(kUsage, "--connect " + conn_.connect + " is tcp: give --key and --server-key, or use the local ipc endpoint");
  }
  api_.emplace(ctx_, conn_.connect, sec);
  if (auto st = api_->connect(); !st)
    fail(kUnreachable, "cannot connect to " + conn_.connect + ": " + st.error().what());
  auto reply = api_->call(type, build, std::chrono::milliseconds(conn_.timeout_ms));
  for (int left = attempts - 1; !reply && reply.error().code() == Errc::unavailable && left > 0; --left)
    reply = api_->call(type, build, std::chrono::milliseconds(conn_.timeout_ms));
  if (!reply && reply.error().code() == Errc::permission_denied) fail(kNotAdmitted, reply.error().what());
  if (!reply) fail(kUnreachable, "cannot reach the controller at " + conn_.connect + ": " + reply.error().what());
  reply_ = std::move(*reply);
  auto r = msg::decode_api_reply({static_cast<const uint8_t*>(reply_.data()), reply_.size()});
  if (!r) fail(kUnreachable, "bad reply from " + conn_.connect + ": " + r.error().what());
  if ((*r)->error() && (*r)->error()->code() != v1::ErrorCode::ok)
    fail(kRefused, std::string("refused (") + v1::EnumNameErrorCode((*r)->error()->code()) +
                       "): " + std::string(msg::sv((*r)->error()->message())));
  return **r;
}

CLI::App* Commands::noun(const std::string& name, const std::string& description) {
  return app_.add_subcommand(name, description)->require_subcommand(1);
}

void Commands::on(CLI::App* command, Action action) {
  command->callback([this, action = std::move(action)] { chosen_ = action; });
}

void Commands::on(CLI::App* command, bool& json_out, const std::vector<std::string>& lines, Action action) {
  json_flag(command, json_out);
  examples(command, lines);
  on(command, std::move(action));
}

void Commands::json_flag(CLI::App* command, bool& flag) {
  command->add_flag("--json", flag, "print JSON");
}

void Commands::examples(CLI::App* command, const std::vector<std::string>& lines) {
  std::string text = lines.size() > 1 ? "Examples:" : "Example:";
  for (const auto& e : lines) text += "\n  " + e;
  command->footer(text);
}

void Commands::finish() {
  std::map<std::string, std::vector<std::string>> by_noun;
  for (auto& [path, c] : leaf_commands(app_)) {
    auto sp = path.find(' ');
    std::string first = example_of(c);
    if (sp != std::string::npos && !first.empty()) by_noun[path.substr(0, sp)].push_back(first);
  }
  for (auto& [noun, lines] : by_noun) {
    std::string text = "Examples:";
    for (auto& e : lines) text += "\n  " + e;
    for (auto* g : app_.get_subcommands([&](CLI::App* x) { return x->get_name() == noun; })) g->footer(text);
  }
}

std::vector<std::pair<std::string, CLI::App*>> leaf_commands(CLI::App& app, const std::string& prefix) {
  std::vector<std::pair<std::string, CLI::App*>> out;
  for (auto* c : app.get_subcommands([](CLI::App* x) { return !x->get_name().empty(); })) {  // not option groups
    std::string path = prefix.empty() ? c->get_name() : prefix + " " + c->get_name();
    auto sub = leaf_commands(*c, path);
    if (sub.empty())
      out.emplace_back(path, c);
    else
      out.insert(out.end(), sub.begin(), sub.end());
  }
  return out;
}

std::string example_of(CLI::App* command) {
  std::string f = command->get_footer();
  auto at = f.find("  morphctl ");
  return at == std::string::npos ? std::string() : f.substr(at + 2, f.find('\n', at) - at - 2);
}

void print(const json& rows, bool as_json, std::ostream& out) {
  if (as_json) {
    out << rows.dump(2) << "\n";
    return;
  }
  json list = rows.is_array() ? rows : json::array({rows});
  if (list.empty()) {
    out << "(none)\n";
    return;
  }
  std::vector<std::string> cols;
  for (auto& [k, v] : list[0].items()) cols.push_back(k);
  auto cell = [](const json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); };
  std::vector<size_t> w(cols.size());
  for (size_t i = 0; i < cols.size(); ++i) {
    w[i] = cols[i].size();
    for (auto& r : list) w[i] = std::max(w[i], cell(r.value(cols[i], json())).size());
  }
  auto line = [&](auto get) {
    for (size_t i = 0; i < cols.size(); ++i) {
      std::string c = get(i);
      out << c << (i + 1 < cols.size() ? std::string(w[i] - c.size() + 2, ' ') : "");
    }
    out << "\n";
  };
  line([&](size_t i) {
    std::string u = cols[i];
    for (auto& ch : u) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    return u;
  });
  for (auto& r : list) line([&](size_t i) { return cell(r.value(cols[i], json())); });
}

int print_reply(Session& s, const v1::ApiReply& reply, const Show& show, bool as_json) {
  print(show(reply), as_json, s.out);
  return kOk;
}

std::string market_resource_names() {
  return resource_names(kMarketResources);
}

v1::Resource resource_arg(const std::string& word) {
  if (auto r = parse_resource(word); r && traded(*r))
    if (auto wire = to_wire(*r)) return *wire;
  fail(kUsage, "--resource " + word + ": not a resource the market sells (" + market_resource_names() + ")");
}

v1::BidTier tier_arg(const std::string& word) {
  if (word == "sla" || word == "sla_critical") return v1::BidTier::sla_critical;
  if (word == "improve" || word == "improvement") return v1::BidTier::improvement;
  if (word == "speculative") return v1::BidTier::speculative;
  fail(kUsage, "--tier " + word + ": unknown tier (sla, improve, speculative)");
}

}  // namespace morph::cli
