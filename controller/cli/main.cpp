// morphctl: noun-verb command line for operators and tenants; talks to the controller's api endpoint.
//
// Exit codes: 0 ok; 1 the controller refused the request (its error is printed); 2 usage (a bad flag or
// value, unreadable key file); 3 the controller could not be reached.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>

#include "common/config.h"
#include "common/kpi/derived.h"
#include "common/msg/api_client.h"
#include "common/msg/curve_keys.h"
#include "common/msg/wire.h"
#include "common/resource.h"
#ifdef MORPHCTL_HAS_TOP
#include "controller/cli/top.h"
#endif

namespace {

using json = nlohmann::ordered_json;
using morph::v1::ApiRequestBody;
namespace v1 = morph::v1;
using Builder = flatbuffers::FlatBufferBuilder;

constexpr int kOk = 0, kRefused = 1, kUsage = 2, kUnreachable = 3;

struct Conn {
  std::string connect = "tcp://127.0.0.1:7712";
  std::string key_file, server_key_file;
  int timeout_ms = 3000;
  bool json_out = false;
};

std::string s(const flatbuffers::String* p) {
  return p ? p->str() : std::string();
}

struct CallError {
  int code;
};

// One request; prints the refusal and throws CallError on failure.
class Client {
 public:
  explicit Client(const Conn& c) : conn_(c) {}
  zmq::message_t call(ApiRequestBody type, const std::function<flatbuffers::Offset<void>(Builder&)>& build) {
    morph::msg::ClientSecurity sec;
    if (!conn_.key_file.empty() || !conn_.server_key_file.empty()) {
      auto kp = morph::msg::load_keypair(conn_.key_file);
      if (!kp) fail(kUsage, "--key: " + std::string(kp.error().what()));
      auto sk = morph::msg::load_public_key(conn_.server_key_file);
      if (!sk) fail(kUsage, "--server-key: " + std::string(sk.error().what()));
      sec.curve = *kp;
      sec.server_public_z85 = *sk;
    } else if (morph::msg::is_tcp(conn_.connect)) {
      fail(kUsage,
           "--connect " + conn_.connect + " is tcp: give --key and --server-key, or use the local ipc endpoint");
    }
    client_.emplace(ctx_, conn_.connect, sec);
    if (auto st = client_->connect(); !st)
      fail(kUnreachable, "cannot connect to " + conn_.connect + ": " + st.error().what());
    auto reply = client_->call(type, build, std::chrono::milliseconds(conn_.timeout_ms));
    if (!reply) fail(kUnreachable, "cannot reach the controller at " + conn_.connect + ": " + reply.error().what());
    msg_ = std::move(*reply);
    auto r = morph::msg::decode_api_reply({static_cast<const uint8_t*>(msg_.data()), msg_.size()});
    if (!r) fail(kUnreachable, "bad reply from " + conn_.connect + ": " + r.error().what());
    if ((*r)->error() && (*r)->error()->code() != v1::ErrorCode::ok)
      fail(kRefused, std::string("refused (") + v1::EnumNameErrorCode((*r)->error()->code()) +
                         "): " + s((*r)->error()->message()));
    reply_ = *r;
    return zmq::message_t();
  }
  const v1::ApiReply& reply() const { return *reply_; }
  [[noreturn]] static void fail(int code, const std::string& m) {
    std::cerr << "morphctl: " << m << "\n";
    throw CallError{code};
  }

 private:
  const Conn& conn_;
  zmq::context_t ctx_;
  std::optional<morph::msg::ApiClient> client_;
  zmq::message_t msg_;
  const v1::ApiReply* reply_ = nullptr;
};

const char* tier_word(v1::BidTier t) {
  switch (t) {
    case v1::BidTier::sla_critical:
      return "sla";
    case v1::BidTier::improvement:
      return "improve";
    case v1::BidTier::speculative:
      return "speculative";
  }
  return "?";
}
std::optional<v1::BidTier> parse_tier(const std::string& w) {
  if (w == "sla" || w == "sla_critical") return v1::BidTier::sla_critical;
  if (w == "improve" || w == "improvement") return v1::BidTier::improvement;
  if (w == "speculative") return v1::BidTier::speculative;
  return std::nullopt;
}
// "cpu, memory, ...": what the market sells (common/resource.h), as --resource takes them.
std::string market_resource_names() {
  return morph::resource_names(morph::kMarketResources);
}
// A resource the market sells, in its wire form; nullopt for any other word.
std::optional<v1::Resource> parse_resource(const std::string& w) {
  auto r = morph::parse_resource(w);
  if (!r || !morph::traded(*r)) return std::nullopt;
  auto wire = morph::to_wire(*r);
  return wire ? std::optional(*wire) : std::nullopt;
}

json account_json(const v1::AccountInfo* a) {
  return {{"account", s(a->account())},
          {"display_name", s(a->display_name())},
          {"balance_ucredits", a->balance_ucredits()},
          {"reserved_ucredits", a->reserved_ucredits()}};
}
json bid_json(const v1::BidInfo* b) {
  return {{"bid_id", b->bid_id()},
          {"account", s(b->account())},
          {"vm", s(b->vm_uuid())},
          {"host", s(b->host())},
          {"resource", v1::EnumNameResource(b->resource())},
          {"tier", tier_word(b->tier())},
          {"quantity", b->quantity()},
          {"min_quantity", b->min_quantity()},
          {"max_price_ucredits", b->max_price_ucredits()},
          {"state", v1::EnumNameBidState(b->state())},
          {"filled", b->filled_quantity()},
          {"rescue", b->rescue()},
          {"expires_ns", b->expires_ns()}};
}
json price_json(const v1::PriceInfo* p) {
  return {{"host", s(p->host())},
          {"resource", v1::EnumNameResource(p->resource())},
          {"tier", tier_word(p->tier())},
          {"price_ucredits", p->price_ucredits()},
          {"supply", p->supply()},
          {"allocated", p->allocated()},
          {"tick", p->tick()}};
}
json alloc_json(const v1::AllocationInfo* a) {
  return {{"host", s(a->host())},
          {"vm", s(a->vm_uuid())},
          {"account", s(a->account())},
          {"bid_id", a->bid_id()},
          {"resource", v1::EnumNameResource(a->resource())},
          {"quantity", a->quantity()},
          {"price_ucredits", a->price_ucredits()}};
}
json policy_json(const v1::VmPolicy* p) {
  return {{"vm", s(p->vm_uuid())},
          {"account", s(p->account())},
          {"rescue", p->rescue()},
          {"runq_wait_permille", p->runq_wait_permille()},
          {"blk_p99_us", p->blk_p99_us()},
          {"drops_per_s", p->drops_per_s()},
          {"max_price_ucredits", p->max_price_ucredits()},
          {"budget_ucredits_per_hour", p->budget_ucredits_per_hour()},
          {"rescue_bid_id", p->rescue_bid_id()}};
}
json adj_json(const flatbuffers::Vector<flatbuffers::Offset<v1::Adjustment>>* v) {
  json out = json::array();
  if (v)
    for (const auto* a : *v) out.push_back({{"resource", v1::EnumNameResource(a->resource())}, {"value", a->value()}});
  return out;
}

// Prints rows as an aligned table (keys of the first row as the header), or as JSON.
void print(const json& rows, bool as_json) {
  if (as_json) {
    std::cout << rows.dump(2) << "\n";
    return;
  }
  json list = rows.is_array() ? rows : json::array({rows});
  if (list.empty()) {
    std::cout << "(none)\n";
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
      std::cout << c << (i + 1 < cols.size() ? std::string(w[i] - c.size() + 2, ' ') : "");
    }
    std::cout << "\n";
  };
  line([&](size_t i) {
    std::string u = cols[i];
    for (auto& ch : u) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    return u;
  });
  for (auto& r : list) line([&](size_t i) { return cell(r.value(cols[i], json())); });
}

// Every leaf command under app as "noun verb" (or "noun" when it has no verbs), in definition order.
std::vector<std::pair<std::string, CLI::App*>> leaf_commands(CLI::App& app, const std::string& prefix = "") {
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

// The "Example" lines a command's --help footer carries.
std::string example_of(CLI::App* c) {
  std::string f = c->get_footer();
  auto at = f.find("  morphctl ");
  return at == std::string::npos ? std::string() : f.substr(at + 2, f.find('\n', at) - at - 2);
}

// Puts each command's examples in its --help footer, and a group's (hosts, bids, ...) its commands' examples.
void set_examples(CLI::App& app, const std::map<std::string, std::vector<std::string>>& examples) {
  std::map<std::string, std::vector<std::string>> by_group;
  for (auto& [path, c] : leaf_commands(app)) {
    auto it = examples.find(path);
    if (it == examples.end()) continue;
    std::string text = it->second.size() > 1 ? "Examples:" : "Example:";
    for (auto& e : it->second) text += "\n  " + e;
    c->footer(text);
    if (auto sp = path.find(' '); sp != std::string::npos) by_group[path.substr(0, sp)].push_back(it->second.front());
  }
  for (auto& [group, lines] : by_group) {
    std::string text = "Examples:";
    for (auto& e : lines) text += "\n  " + e;
    for (auto* g : app.get_subcommands([&](CLI::App* x) { return x->get_name() == group; })) g->footer(text);
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"morphctl: operate and trade on a Morph controller"};
  app.set_version_flag("--version", "0.1.0");
  app.require_subcommand(1);
  app.footer(R"(Connection: --connect ipc:///run/morph/api (local: no keys, acts as admin) or
  --connect tcp://ctl:7712 --key me.key --server-key controller.pub (a tenant acts on its account only).
Amounts and prices are integer micro-credits; prices are per unit per second (cpu unit: millicore).
Exit codes: 0 ok, 1 the controller refused (its error is printed), 2 usage, 3 controller unreachable.
Examples:
  morphctl --connect ipc:///run/morph/api accounts create acme
  morphctl accounts deposit acme 5000000
  morphctl quote --vm 0f1e... --quantity 500
  morphctl bids submit --account acme --vm 0f1e... --quantity 500 --max-price 20 --tier improve
  morphctl policy set 0f1e... --rescue on --runq-wait-permille 200 --max-price 50 --budget-per-hour 5000000
  morphctl allocations list --json
  morphctl ledger show --account acme --since-tick 100)");
  Conn conn;
  app.add_option("--connect", conn.connect, "controller api endpoint")->envname("MORPH_CONNECT")->capture_default_str();
  app.add_option("--key", conn.key_file, "this client's secret key file (NAME.key), for tcp");
  app.add_option("--server-key", conn.server_key_file, "the controller's public key file (NAME.pub), for tcp");
  app.add_option("--timeout-ms", conn.timeout_ms, "how long to wait for the controller")->capture_default_str();
  auto add_json = [&](CLI::App* c) { c->add_flag("--json", conn.json_out, "print JSON"); };

  Client client(conn);
  std::function<int()> action;
  auto on = [&](CLI::App* c, std::function<int()> fn) { c->callback([&action, fn] { action = fn; }); };

  // keys gen
  auto* keys = app.add_subcommand("keys", "CURVE key pairs");
  auto* gen = keys->add_subcommand("gen", "write NAME.key (secret, mode 0600) and NAME.pub into DIR");
  std::string key_dir, key_name;
  gen->add_option("--out", key_dir, "directory (created mode 0700 if missing)")->required();
  gen->add_option("--name", key_name, "key name: the host id for agents")->required();
  add_json(gen);
  on(gen, [&] {
    auto kp = morph::msg::generate_keypair();
    if (!kp) Client::fail(kRefused, kp.error().what());
    if (auto st = morph::msg::write_keypair(key_dir, key_name, *kp); !st) Client::fail(kRefused, st.error().what());
    if (conn.json_out)
      print({{"name", key_name},
             {"public_key", kp->public_z85},
             {"public_key_file", key_dir + "/" + key_name + ".pub"},
             {"secret_key_file", key_dir + "/" + key_name + ".key"}},
            true);
    else
      std::cout << kp->public_z85 << "\n";
    return kOk;
  });

  // hosts / vms / kpis
  auto* hosts = app.add_subcommand("hosts", "hosts known to the controller")->require_subcommand(1);
  auto* hosts_list = hosts->add_subcommand("list", "list hosts, up or down");
  add_json(hosts_list);
  on(hosts_list, [&] {
    client.call(ApiRequestBody::HostsQuery, [](Builder& b) { return v1::CreateHostsQuery(b).Union(); });
    json rows = json::array();
    if (auto* r = client.reply().body_as_HostsReply(); r && r->hosts())
      for (const auto* h : *r->hosts()) {
        json cap = json::object();
        if (h->capacity())
          for (const auto* c : *h->capacity()) cap[v1::EnumNameResource(c->resource())] = c->amount();
        rows.push_back({{"host", s(h->host())},
                        {"up", h->up()},
                        {"vms", h->vm_count()},
                        {"kpi_seq", h->kpi_seq()},
                        {"kpi_gaps", h->kpi_gaps()},
                        {"bad_messages", h->bad_messages()},
                        {"capacity", cap}});
      }
    print(rows, conn.json_out);
    return kOk;
  });
  auto* vms = app.add_subcommand("vms", "VMs reported by the agents")->require_subcommand(1);
  auto* vms_list = vms->add_subcommand("list", "list VMs with their baselines and owners");
  std::string vm_host;
  vms_list->add_option("--host", vm_host, "only this host");
  add_json(vms_list);
  on(vms_list, [&] {
    client.call(ApiRequestBody::VmsQuery,
                [&](Builder& b) { return v1::CreateVmsQueryDirect(b, vm_host.c_str()).Union(); });
    json rows = json::array();
    if (auto* r = client.reply().body_as_VmsReply(); r && r->vms())
      for (const auto* v : *r->vms()) {
        if (!v->vm()) continue;
        json base = json::object();
        if (v->vm()->baseline())
          for (const auto* c : *v->vm()->baseline()) base[v1::EnumNameResource(c->resource())] = c->amount();
        rows.push_back({{"host", s(v->host())},
                        {"vm", s(v->vm()->uuid())},
                        {"name", s(v->vm()->name())},
                        {"owner", s(v->vm()->owner())},
                        {"running", v->vm()->running()},
                        {"baseline", base}});
      }
    print(rows, conn.json_out);
    return kOk;
  });
  std::string vm_owner_vm, vm_owner_acct;
  auto* vms_owner =
      vms->add_subcommand("set-owner", "admin: make ACCOUNT the VM's owner, overriding the host's metadata");
  vms_owner->add_option("vm", vm_owner_vm, "VM uuid")->required();
  vms_owner->add_option("account", vm_owner_acct, "account")->required();
  add_json(vms_owner);
  on(vms_owner, [&] {
    client.call(ApiRequestBody::VmOwnerSet, [&](Builder& b) {
      return v1::CreateVmOwnerSetDirect(b, vm_owner_vm.c_str(), vm_owner_acct.c_str()).Union();
    });
    if (conn.json_out)
      print({{"vm", vm_owner_vm}, {"owner", vm_owner_acct}}, true);
    else
      std::cout << "vm " << vm_owner_vm << " owned by " << vm_owner_acct << "\n";
    return kOk;
  });
  auto* kpis = app.add_subcommand("kpis", "latest KPIs")->require_subcommand(1);
  auto* kpis_show = kpis->add_subcommand("show", "latest KPI interval per VM (run-queue wait share, drops, ...)");
  std::string kpi_vm;
  kpis_show->add_option("vm", kpi_vm, "only this VM (uuid or name)");
  add_json(kpis_show);
  on(kpis_show, [&] {
    client.call(ApiRequestBody::KpisQuery, [&](Builder& b) { return v1::CreateKpisQueryDirect(b, "", "").Union(); });
    json rows = json::array();
    if (auto* r = client.reply().body_as_KpisReply(); r && r->reports())
      for (const auto* rep : *r->reports()) {
        if (!rep->vms()) continue;
        for (const auto* k : *rep->vms()) {
          if (!kpi_vm.empty() && s(k->uuid()) != kpi_vm && s(k->name()) != kpi_vm) continue;
          rows.push_back({{"host", s(rep->host())},
                          {"vm", s(k->uuid())},
                          {"name", s(k->name())},
                          {"cpu_run_ms", k->cpu_run_ns() / 1'000'000},
                          {"cpu_wait_ms", k->cpu_wait_ns() / 1'000'000},
                          {"runq_wait_permille", morph::kpi::runq_wait_permille(k->cpu_run_ns(), k->cpu_wait_ns())},
                          {"throttled_ms", k->cpu_throttled_ns() / 1'000'000},
                          {"net_drops", morph::kpi::net_drops(k->net_rx_drops(), k->net_tx_drops())},
                          {"rss_mib", k->mem_rss_bytes() >> 20}});
        }
      }
    if (!kpi_vm.empty() && rows.empty()) Client::fail(kRefused, "no KPIs for VM " + kpi_vm);
    print(rows, conn.json_out);
    return kOk;
  });

  // accounts
  auto* accounts = app.add_subcommand("accounts", "tenant accounts")->require_subcommand(1);
  std::string acct, display;
  int64_t amount = 0;
  std::string reference;
  auto* acc_create = accounts->add_subcommand("create", "admin: open an account with a zero balance");
  acc_create->add_option("account", acct, "account name")->required();
  acc_create->add_option("--display-name", display, "human name");
  add_json(acc_create);
  auto show_account = [&] {
    print(account_json(client.reply().body_as_AccountReply()->account()), conn.json_out);
    return kOk;
  };
  on(acc_create, [&] {
    client.call(ApiRequestBody::AccountCreate,
                [&](Builder& b) { return v1::CreateAccountCreateDirect(b, acct.c_str(), display.c_str()).Union(); });
    return show_account();
  });
  auto* acc_get = accounts->add_subcommand("get", "balance and reserved credits of an account");
  acc_get->add_option("account", acct, "account name")->required();
  add_json(acc_get);
  on(acc_get, [&] {
    client.call(ApiRequestBody::AccountGet,
                [&](Builder& b) { return v1::CreateAccountGetDirect(b, acct.c_str()).Union(); });
    return show_account();
  });
  auto* acc_list = accounts->add_subcommand("list", "accounts you may see");
  add_json(acc_list);
  on(acc_list, [&] {
    client.call(ApiRequestBody::AccountList, [](Builder& b) { return v1::CreateAccountList(b).Union(); });
    json rows = json::array();
    if (auto* r = client.reply().body_as_AccountListReply(); r && r->accounts())
      for (const auto* a : *r->accounts()) rows.push_back(account_json(a));
    print(rows, conn.json_out);
    return kOk;
  });
  auto* acc_dep = accounts->add_subcommand("deposit", "admin: credit an account (micro-credits)");
  acc_dep->add_option("account", acct, "account name")->required();
  acc_dep->add_option("amount", amount, "micro-credits, > 0")->required()->check(CLI::PositiveNumber);
  acc_dep->add_option("--reference", reference, "note recorded with the deposit");
  add_json(acc_dep);
  on(acc_dep, [&] {
    client.call(ApiRequestBody::AccountDeposit, [&](Builder& b) {
      return v1::CreateAccountDepositDirect(b, acct.c_str(), amount, reference.c_str()).Union();
    });
    return show_account();
  });

  // bids
  auto* bids = app.add_subcommand("bids", "bids for resource increments")->require_subcommand(1);
  std::string bid_vm, resource = "cpu", tier = "improve", expires_in;
  int64_t quantity = 0, min_quantity = 0, max_price = 0;
  uint64_t bid_id = 0;
  auto* b_sub = bids->add_subcommand("submit", "bid for an increment above a VM's baseline");
  b_sub->add_option("--account", acct, "account that pays")->required();
  b_sub->add_option("--vm", bid_vm, "VM uuid")->required();
  b_sub->add_option("--quantity", quantity, "increment, in the resource's unit (cpu: millicores)")->required();
  b_sub->add_option("--max-price", max_price, "micro-credits per unit per second")->required();
  b_sub->add_option("--min-quantity", min_quantity, "smallest partial fill accepted (default: all or nothing)");
  b_sub->add_option("--resource", resource, market_resource_names())->capture_default_str();
  b_sub->add_option("--tier", tier, "sla, improve, speculative")->capture_default_str();
  b_sub->add_option("--expires-in", expires_in, "duration (\"10m\"); default until cancelled");
  add_json(b_sub);
  auto show_bid = [&] {
    print(bid_json(client.reply().body_as_BidReply()->bid()), conn.json_out);
    return kOk;
  };
  on(b_sub, [&] {
    auto r = parse_resource(resource);
    if (!r)
      Client::fail(kUsage,
                   "--resource " + resource + ": not a resource the market sells (" + market_resource_names() + ")");
    auto t = parse_tier(tier);
    if (!t) Client::fail(kUsage, "--tier " + tier + ": unknown tier (sla, improve, speculative)");
    uint64_t expires = 0;
    if (!expires_in.empty()) {
      auto d = morph::config::parse_duration(expires_in);
      if (!d) Client::fail(kUsage, "--expires-in: " + std::string(d.error().what()));
      expires = morph::msg::now_ns() + static_cast<uint64_t>(d->count());
    }
    client.call(ApiRequestBody::BidSubmit, [&](Builder& b) {
      return v1::CreateBidSubmitDirect(b, acct.c_str(), bid_vm.c_str(), *r, quantity, min_quantity, max_price, *t,
                                       expires)
          .Union();
    });
    return show_bid();
  });
  auto* b_amend = bids->add_subcommand("amend", "change a live bid (fields not given keep their value)");
  b_amend->add_option("bid", bid_id, "bid id")->required();
  auto* o_q = b_amend->add_option("--quantity", quantity, "new quantity");
  auto* o_mq = b_amend->add_option("--min-quantity", min_quantity, "new minimum fill");
  auto* o_p = b_amend->add_option("--max-price", max_price, "new max price");
  add_json(b_amend);
  on(b_amend, [&] {
    client.call(ApiRequestBody::BidAmend, [&](Builder& b) {
      v1::BidAmendBuilder ab(b);
      ab.add_bid_id(bid_id);
      if (o_q->count()) ab.add_quantity(quantity);
      if (o_mq->count()) ab.add_min_quantity(min_quantity);
      if (o_p->count()) ab.add_max_price_ucredits(max_price);
      return ab.Finish().Union();
    });
    return show_bid();
  });
  auto* b_cancel = bids->add_subcommand("cancel", "cancel a bid (its allocation ends at the next tick)");
  b_cancel->add_option("bid", bid_id, "bid id")->required();
  add_json(b_cancel);
  on(b_cancel, [&] {
    client.call(ApiRequestBody::BidCancel, [&](Builder& b) { return v1::CreateBidCancel(b, bid_id).Union(); });
    return show_bid();
  });
  auto* b_list = bids->add_subcommand("list", "live bids (rescue bids marked)");
  b_list->add_option("--account", acct, "only this account");
  b_list->add_option("--vm", bid_vm, "only this VM");
  add_json(b_list);
  on(b_list, [&] {
    client.call(ApiRequestBody::BidList,
                [&](Builder& b) { return v1::CreateBidListDirect(b, acct.c_str(), bid_vm.c_str()).Union(); });
    json rows = json::array();
    if (auto* r = client.reply().body_as_BidListReply(); r && r->bids())
      for (const auto* x : *r->bids()) rows.push_back(bid_json(x));
    print(rows, conn.json_out);
    return kOk;
  });

  // prices / allocations / ledger / shifts
  std::string q_host, q_vm;
  auto* prices = app.add_subcommand("prices", "cleared prices")->require_subcommand(1);
  auto* p_list = prices->add_subcommand("list", "last cleared price per host, resource and tier");
  p_list->add_option("--host", q_host, "only this host");
  add_json(p_list);
  on(p_list, [&] {
    client.call(ApiRequestBody::PricesQuery,
                [&](Builder& b) { return v1::CreatePricesQueryDirect(b, q_host.c_str()).Union(); });
    json rows = json::array();
    if (auto* r = client.reply().body_as_PricesReply(); r && r->prices())
      for (const auto* p : *r->prices()) rows.push_back(price_json(p));
    print(rows, conn.json_out);
    return kOk;
  });
  auto* allocs = app.add_subcommand("allocations", "allocations in force")->require_subcommand(1);
  auto* a_list = allocs->add_subcommand("list", "allocations in force after the last tick");
  a_list->add_option("--host", q_host, "only this host");
  a_list->add_option("--vm", q_vm, "only this VM");
  a_list->add_option("--account", acct, "only this account");
  add_json(a_list);
  on(a_list, [&] {
    client.call(ApiRequestBody::AllocationsQuery, [&](Builder& b) {
      return v1::CreateAllocationsQueryDirect(b, q_host.c_str(), q_vm.c_str(), acct.c_str()).Union();
    });
    json rows = json::array();
    if (auto* r = client.reply().body_as_AllocationsReply(); r && r->allocations())
      for (const auto* a : *r->allocations()) rows.push_back(alloc_json(a));
    print(rows, conn.json_out);
    return kOk;
  });
  auto* ledger = app.add_subcommand("ledger", "charges, failures and deposits")->require_subcommand(1);
  auto* l_show =
      ledger->add_subcommand("show", "ledger entries from the controller's ledger database, newest page first");
  uint64_t since_tick = 0, before_entry = 0;
  uint32_t limit = 100;
  std::string l_kind;
  l_show->add_option("--account", acct, "only this account (a tenant always sees only its own)");
  l_show->add_option("--since-tick", since_tick, "from this tick on");
  l_show->add_option("--kind", l_kind, "only this kind of entry")
      ->check(CLI::IsMember({"charge", "deposit", "failure"}));
  l_show->add_option("--before", before_entry, "page back: only entries older than this entry id");
  l_show->add_option("--limit", limit, "at most this many (newest)")
      ->capture_default_str()
      ->check(CLI::Range(1u, 10000u));
  add_json(l_show);
  on(l_show, [&] {
    client.call(ApiRequestBody::LedgerQuery, [&](Builder& b) {
      return v1::CreateLedgerQueryDirect(b, acct.c_str(), since_tick, limit, l_kind.empty() ? nullptr : l_kind.c_str(),
                                         before_entry)
          .Union();
    });
    json rows = json::array();
    uint64_t next = 0;
    if (auto* r = client.reply().body_as_LedgerReply(); r) {
      next = r->next_before();
      if (r->entries())
        for (const auto* e : *r->entries())
          rows.push_back({{"entry_id", e->entry_id()},
                          {"tick", e->tick()},
                          {"account", s(e->account())},
                          {"kind", s(e->kind())},
                          {"amount_ucredits", e->amount_ucredits()},
                          {"bid_id", e->bid_id()},
                          {"reason", s(e->reason())},
                          {"timestamp_ns", e->timestamp_ns()}});
    }
    print(rows, conn.json_out);
    if (next) std::cerr << "older entries: --before " << next << "\n";
    return kOk;
  });
  auto* shifts = app.add_subcommand("shifts", "shift commands sent for allocations")->require_subcommand(1);
  auto* s_list = shifts->add_subcommand("list", "recent shift commands and their results");
  s_list->add_option("--host", q_host, "only this host");
  s_list->add_option("--limit", limit, "at most this many (newest)");
  add_json(s_list);
  on(s_list, [&] {
    client.call(ApiRequestBody::ShiftsQuery,
                [&](Builder& b) { return v1::CreateShiftsQueryDirect(b, q_host.c_str(), limit).Union(); });
    json rows = json::array();
    if (auto* r = client.reply().body_as_ShiftsReply(); r && r->shifts())
      for (const auto* x : *r->shifts())
        rows.push_back({{"host", s(x->host())},
                        {"command_id", x->command_id()},
                        {"vm", s(x->vm_uuid())},
                        {"phase", s(x->phase())},
                        {"settings", adj_json(x->adjustments())},
                        {"error", x->error() ? s(x->error()->message()) : ""}});
    print(rows, conn.json_out);
    return kOk;
  });

  // policy
  auto* policy = app.add_subcommand("policy", "per-VM SLA thresholds and rescue")->require_subcommand(1);
  std::string pol_vm, rescue_word;
  uint32_t runq_permille = 0;
  uint64_t blk_p99 = 0, drops = 0;
  int64_t budget = 0;
  auto* pol_get = policy->add_subcommand("get", "a VM's policy and the rescue bid in force");
  pol_get->add_option("vm", pol_vm, "VM uuid")->required();
  add_json(pol_get);
  auto show_policy = [&] {
    const auto* pr = client.reply().body_as_PolicyReply();
    json j = policy_json(pr->policy());
    j["breach_intervals"] = pr->breach_intervals();
    j["recover_intervals"] = pr->recover_intervals();
    j["cpu_step_mc"] = pr->cpu_step();
    j["disk_iops_step"] = pr->disk_iops_step();
    j["net_kbps_step"] = pr->net_kbps_step();
    print(j, conn.json_out);
    return kOk;
  };
  on(pol_get, [&] {
    client.call(ApiRequestBody::PolicyGet,
                [&](Builder& b) { return v1::CreatePolicyGetDirect(b, pol_vm.c_str()).Union(); });
    return show_policy();
  });
  auto* pol_set = policy->add_subcommand("set", "change a VM's policy (fields not given keep their value)");
  pol_set->add_option("vm", pol_vm, "VM uuid")->required();
  auto* o_rescue = pol_set->add_option("--rescue", rescue_word, "on or off")->check(CLI::IsMember({"on", "off"}));
  auto* o_runq =
      pol_set->add_option("--runq-wait-permille", runq_permille, "SLA: run-queue wait share threshold (0 = off)");
  auto* o_blk = pol_set->add_option("--blk-p99-us", blk_p99, "SLA: block latency p99 threshold (0 = off)");
  auto* o_drops = pol_set->add_option("--drops-per-s", drops, "SLA: packet drops threshold (0 = off)");
  auto* o_maxp = pol_set->add_option("--max-price", max_price, "rescue bids' max price per unit-second");
  auto* o_budget = pol_set->add_option("--budget-per-hour", budget, "cap on rescue spending per hour");
  // Rescue detection and step sizes; the ranges are the controller's (docs/market.md).
  int64_t breach_n = 0, recover_n = 0, cpu_step = 0, iops_step = 0, kbps_step = 0;
  const CLI::Range intervals(int64_t{1}, int64_t{100}), steps(int64_t{1}, int64_t{1} << 20);
  auto* o_breach = pol_set
                       ->add_option("--breach-intervals", breach_n,
                                    "consecutive KPI intervals over a threshold before a rescue (1..100; default 3)")
                       ->check(intervals);
  auto* o_recover = pol_set
                        ->add_option("--recover-intervals", recover_n,
                                     "consecutive healthy intervals before a rescue is retired (1..100; default 5)")
                        ->check(intervals);
  auto* o_cpu_step =
      pol_set->add_option("--cpu-step", cpu_step, "millicores a CPU rescue asks for (1..1048576; default 500)")
          ->check(steps);
  auto* o_iops_step =
      pol_set->add_option("--disk-iops-step", iops_step, "IOPS a disk rescue asks for (1..1048576; default 200)")
          ->check(steps);
  auto* o_kbps_step =
      pol_set->add_option("--net-kbps-step", kbps_step, "kbit/s a network rescue asks for (1..1048576; default 10000)")
          ->check(steps);
  add_json(pol_set);
  on(pol_set, [&] {
    client.call(ApiRequestBody::PolicySet, [&](Builder& b) {
      auto vm = b.CreateString(pol_vm);
      v1::PolicySetBuilder pb(b);
      pb.add_vm_uuid(vm);
      if (o_rescue->count()) pb.add_rescue(rescue_word == "on");
      if (o_runq->count()) pb.add_runq_wait_permille(runq_permille);
      if (o_blk->count()) pb.add_blk_p99_us(blk_p99);
      if (o_drops->count()) pb.add_drops_per_s(drops);
      if (o_maxp->count()) pb.add_max_price_ucredits(max_price);
      if (o_budget->count()) pb.add_budget_ucredits_per_hour(budget);
      if (o_breach->count()) pb.add_breach_intervals(static_cast<uint32_t>(breach_n));
      if (o_recover->count()) pb.add_recover_intervals(static_cast<uint32_t>(recover_n));
      if (o_cpu_step->count()) pb.add_cpu_step(cpu_step);
      if (o_iops_step->count()) pb.add_disk_iops_step(iops_step);
      if (o_kbps_step->count()) pb.add_net_kbps_step(kbps_step);
      return pb.Finish().Union();
    });
    return show_policy();
  });

  // quote
  auto* quote = app.add_subcommand("quote", "what an increment would cost now, and recent prices");
  uint32_t history = 10;
  quote->add_option("--vm", q_vm, "VM uuid (its host's book)");
  quote->add_option("--host", q_host, "host (instead of --vm)");
  quote->add_option("--quantity", quantity, "increment wanted")->required();
  quote->add_option("--resource", resource, market_resource_names())->capture_default_str();
  quote->add_option("--tier", tier, "sla, improve, speculative")->capture_default_str();
  quote->add_option("--history", history, "recent ticks of price history")->capture_default_str();
  add_json(quote);
  on(quote, [&] {
    auto r = parse_resource(resource);
    if (!r)
      Client::fail(kUsage,
                   "--resource " + resource + ": not a resource the market sells (" + market_resource_names() + ")");
    auto t = parse_tier(tier);
    if (!t) Client::fail(kUsage, "--tier " + tier + ": unknown tier (sla, improve, speculative)");
    if (q_vm.empty() && q_host.empty()) Client::fail(kUsage, "quote needs --vm or --host");
    client.call(ApiRequestBody::QuoteQuery, [&](Builder& b) {
      return v1::CreateQuoteQueryDirect(b, q_vm.c_str(), q_host.c_str(), *r, *t, quantity, history).Union();
    });
    const auto* q = client.reply().body_as_QuoteReply();
    json hist = json::array();
    if (q->history())
      for (const auto* p : *q->history())
        hist.push_back({{"tick", p->tick()}, {"price_ucredits", p->price_ucredits()}});
    json out = {{"host", s(q->host())},
                {"resource", v1::EnumNameResource(q->resource())},
                {"tier", tier_word(q->tier())},
                {"quantity", q->quantity()},
                {"available", q->available()},
                {"price_ucredits", q->price_ucredits()},
                {"cost_per_tick_ucredits", q->cost_per_tick_ucredits()},
                {"tick_ms", q->tick_ms()}};
    if (conn.json_out) {
      out["history"] = hist;
      print(out, true);
    } else {
      print(out, false);
      std::cout << "recent prices:";
      for (auto& h : hist) std::cout << " " << h["price_ucredits"].dump();
      std::cout << (hist.empty() ? " (none yet)\n" : "\n");
      if (q->available() < q->quantity())
        std::cout << "only " << q->available() << " of " << q->quantity() << " could be had now\n";
    }
    return kOk;
  });

#ifdef MORPHCTL_HAS_TOP
  morph::cli::add_top_command(app);  // runs from its callback and exits through CLI::Success / RuntimeError
#endif

  // commands: every command path, from the parsed-command tree itself (tests walk it so that a new command
  // without --json or an example cannot go unnoticed).
  auto* commands = app.add_subcommand("commands", "list every command (leaf commands, as typed), with its example");
  add_json(commands);
  on(commands, [&] {
    json rows = json::array();
    for (auto& [path, c] : leaf_commands(app))
      rows.push_back({{"command", path},
                      {"json", c->get_option_no_throw("--json") != nullptr},
                      {"example", example_of(c)},
                      {"description", c->get_description()}});
    if (conn.json_out)
      print(rows, true);
    else
      for (auto& r : rows) std::cout << r["command"].get<std::string>() << "\n";
    return kOk;
  });

  // Examples shown by each command's --help (the footer); a group's --help shows its commands' examples.
  const std::map<std::string, std::vector<std::string>> examples = {
      {"keys gen", {"morphctl keys gen --out /etc/morph/keys --name host-a"}},
      {"hosts list", {"morphctl hosts list", "morphctl --connect ipc:///run/morph/api hosts list --json"}},
      {"vms list", {"morphctl vms list --host host-a", "morphctl vms list --json"}},
      {"vms set-owner", {"morphctl vms set-owner 0f1e2d3c-... acme"}},
      {"kpis show", {"morphctl kpis show", "morphctl kpis show demo-vm1 --json"}},
      {"accounts create", {"morphctl accounts create acme --display-name \"Acme Ltd\""}},
      {"accounts get", {"morphctl accounts get acme --json"}},
      {"accounts list", {"morphctl accounts list --json"}},
      {"accounts deposit", {"morphctl accounts deposit acme 5000000 --reference invoice-42"}},
      {"bids submit",
       {"morphctl bids submit --account acme --vm 0f1e2d3c-... --quantity 500 --max-price 20 --tier improve"}},
      {"bids amend", {"morphctl bids amend 17 --max-price 30"}},
      {"bids cancel", {"morphctl bids cancel 17"}},
      {"bids list", {"morphctl bids list --account acme", "morphctl bids list --vm 0f1e2d3c-... --json"}},
      {"prices list", {"morphctl prices list --host host-a", "morphctl prices list --json"}},
      {"allocations list", {"morphctl allocations list --account acme", "morphctl allocations list --json"}},
      {"ledger show",
       {"morphctl ledger show --account acme --since-tick 100", "morphctl ledger show --limit 20 --json"}},
      {"shifts list", {"morphctl shifts list --host host-a --limit 20", "morphctl shifts list --json"}},
      {"policy get", {"morphctl policy get 0f1e2d3c-... --json"}},
      {"policy set",
       {"morphctl policy set 0f1e2d3c-... --rescue on --runq-wait-permille 200 --max-price 50 --budget-per-hour "
        "5000000",
        "morphctl policy set 0f1e2d3c-... --breach-intervals 1 --recover-intervals 5 --cpu-step 500 --json"}},
      {"quote",
       {"morphctl quote --vm 0f1e2d3c-... --quantity 500",
        "morphctl quote --host host-a --quantity 500 --tier sla --json"}},
      {"top",
       {"morphctl top --ipc-dir /run/morph", "morphctl top --ipc-dir /run/morph --count 3 --json",
        "morphctl top --api tcp://ctl:7712 --events tcp://ctl:7713 --key ops.key --server-key controller.pub --once"}},
      {"commands", {"morphctl commands", "morphctl commands --json"}},
  };
  set_examples(app, examples);
  // An unknown command is named (CLI11 alone would only say that a subcommand is required).
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--connect" || a == "--key" || a == "--server-key" || a == "--timeout-ms") {
      ++i;  // its value
      continue;
    }
    if (a.starts_with("-")) continue;
    if (app.get_subcommands([&](CLI::App* c) { return c->check_name(a); }).empty()) {
      std::cerr << "morphctl: unknown command '" << a
                << "' (morphctl commands lists them; morphctl --help explains them)\n";
      return kUsage;
    }
    break;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::RuntimeError& e) {
    return e.get_exit_code();  // a command run from its callback (top) with its own status
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : kUsage;
  }
  try {
    return action ? action() : kUsage;
  } catch (const CallError& e) {
    return e.code;
  }
}
