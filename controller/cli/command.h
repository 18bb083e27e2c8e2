#pragma once
// What every morphctl command file shares: the exit codes, the connection the global flags describe, one
// request to the controller (Client), the checked words of arguments (resource, tier), printing rows as a
// table or JSON, and the registration helpers a noun's file adds its verbs through (the verb's --json flag,
// its --help examples, the action run once the command line parsed).
// It owns no command: each noun's file (accounts.cpp, bids.cpp, ...) registers its own verbs with their own
// options, and nouns.def lists the nouns. It never reads or writes process-wide state: an action prints to
// the streams of the Session it runs with, so a test can drive morphctl without a terminal or a socket.

#include <CLI/CLI.hpp>
#include <functional>
#include <iosfwd>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/msg/api_client.h"

namespace morph::cli {

using json = nlohmann::ordered_json;
using Builder = flatbuffers::FlatBufferBuilder;

// morphctl's exit codes (docs/operations.md).
// kNotAdmitted: the controller refused the connection itself at the CURVE handshake (a key not on its
// allow-list or not admitted on the api, a wrong server key), which is not an unreachable controller.
enum ExitCode : int { kOk = 0, kRefused = 1, kUsage = 2, kUnreachable = 3, kNotAdmitted = 4 };

// A command that cannot go on: the runner prints "morphctl: <message>" on stderr and exits with `code`.
struct CommandError {
  int code;
  std::string message;
};
[[noreturn]] void fail(int code, std::string message);

// The global flags: where the controller's api endpoint is, and this client's CURVE keys for tcp://.
struct Connection {
  std::string connect = "tcp://127.0.0.1:7712";
  std::string key_file, server_key_file;
  int timeout_ms = 3000;
};

// Requests to the controller. Each call connects (keys are read then, so a command that needs no controller
// needs no keys) and returns the verified reply, valid until the next call; a failure throws CommandError:
// kUsage for keys, kUnreachable for no answer or a bad one, kNotAdmitted for a refused handshake, kRefused
// with the controller's own error.
class Client {
 public:
  explicit Client(Connection connection) : conn_(std::move(connection)) {}
  // `attempts` > 1 sends the request again after no reply in time: only for requests safe to repeat (a
  // deposit carrying its idempotency key).
  const v1::ApiReply& call(v1::ApiRequestBody type, const std::function<flatbuffers::Offset<void>(Builder&)>& build,
                           int attempts = 1);

 private:
  Connection conn_;
  zmq::context_t ctx_;
  std::optional<msg::ApiClient> api_;
  zmq::message_t reply_;
};

// What an action runs with.
struct Session {
  Client& client;
  std::ostream& out;
  std::ostream& err;
};
using Action = std::function<int(Session&)>;
// Builds a request's body from the verb's parsed options; makes the rows or the record to print of a reply.
using Build = std::function<flatbuffers::Offset<void>(Builder&)>;
using Show = std::function<json(const v1::ApiReply&)>;
// Prints what `show` makes of the reply on the session's stdout (print() below); kOk.
int print_reply(Session& s, const v1::ApiReply& reply, const Show& show, bool as_json);

// A verb being registered: its CLI11 command and its own options (a struct with a `bool json`), shared with
// its action and nothing else.
template <class Args>
struct Verb {
  CLI::App* cmd;
  std::shared_ptr<Args> args;
};
template <class Args>
Verb<Args> verb(CLI::App* parent, const std::string& name, const std::string& description) {
  return {parent->add_subcommand(name, description), std::make_shared<Args>()};
}

// The registration helpers, one instance per command line: a noun's file adds its verbs through them.
class Commands {
 public:
  explicit Commands(CLI::App& app) : app_(app) {}
  CLI::App& app() { return app_; }
  // `morphctl NAME VERB ...`: a noun that needs one of its verbs.
  CLI::App* noun(const std::string& name, const std::string& description);
  // The action `command` runs once the whole command line parsed (only the chosen command's runs).
  void on(CLI::App* command, Action action);
  // What a verb's registration ends with: --json into `json_out` (after the verb's own options, where --help
  // lists it), its examples, and its action.
  void on(CLI::App* command, bool& json_out, const std::vector<std::string>& examples, Action action);
  template <class Args>
  void on(const Verb<Args>& v, const std::vector<std::string>& examples, Action action) {
    on(v.cmd, v.args->json, examples, std::move(action));
  }
  // The commonest action: send one request (`type`, its body from `build`) and print what `show` makes of
  // the reply, as a table or with --json as JSON.
  template <class Args>
  void request(const Verb<Args>& v, const std::vector<std::string>& examples, v1::ApiRequestBody type, Build build,
               Show show) {
    on(v, examples, [type, build = std::move(build), show = std::move(show), args = v.args](Session& s) {
      return print_reply(s, s.client.call(type, build), show, args->json);
    });
  }
  // `--json` (every command has it: integration_cli_json checks).
  static void json_flag(CLI::App* command, bool& flag);
  // The examples `command --help` ends with; the first one is also shown by its noun's --help.
  static void examples(CLI::App* command, const std::vector<std::string>& lines);
  // After every noun registered: each noun's --help footer lists its verbs' first examples.
  void finish();
  const Action& chosen() const { return chosen_; }

 private:
  CLI::App& app_;
  Action chosen_;
};

// Every leaf command under `app` as "noun verb" (or "noun" when it has no verbs), in registration order.
std::vector<std::pair<std::string, CLI::App*>> leaf_commands(CLI::App& app, const std::string& prefix = "");
// The first "morphctl ..." example of a command's --help footer ("" when it has none).
std::string example_of(CLI::App* command);

// One row per element of a reply's vector (none when the vector is absent).
template <class T, class Row>
json rows_of(const flatbuffers::Vector<flatbuffers::Offset<T>>* items, Row row) {
  json rows = json::array();
  if (items)
    for (const T* item : *items) rows.push_back(row(*item));
  return rows;
}

// The rows a reply's body holds: Row of each element of its vector Items (none when absent), e.g.
// rows_in<&v1::ApiReply::body_as_HostsReply, &v1::HostsReply::hosts, host_json>.
template <auto Body, auto Items, auto Row>
json rows_in(const v1::ApiReply& reply) {
  const auto* body = (reply.*Body)();
  return rows_of(body ? (body->*Items)() : nullptr, Row);
}
// A reply's body or record that must be there: a reply without it (another body type) is a bad reply.
template <class T>
const T& expect(const T* part) {
  if (!part) fail(kUnreachable, "the controller's reply is not the one asked for");
  return *part;
}
// The one record a reply's body holds, e.g. record_in<&v1::ApiReply::body_as_BidReply, &v1::BidReply::bid, bid_json>.
template <auto Body, auto Field, auto Row>
json record_in(const v1::ApiReply& reply) {
  return Row(expect((expect((reply.*Body)()).*Field)()));
}

// Rows (an array of objects, or one object) as an aligned table with the first row's keys upper-cased as
// the header, "(none)" for no rows; or as indented JSON.
void print(const json& rows, bool as_json, std::ostream& out);

// "cpu, memory, ...": what the market sells (common/resource.h), as --resource takes them.
std::string market_resource_names();
// --resource (a resource the market sells, in its wire form) and --tier words; a word that is none throws
// CommandError kUsage naming the flag and the choices.
v1::Resource resource_arg(const std::string& word);
v1::BidTier tier_arg(const std::string& word);
// The tier as morphctl prints it (sla, improve, speculative) is common/msg/wire.h's.
using msg::tier_word;

}  // namespace morph::cli
