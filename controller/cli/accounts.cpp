// `morphctl accounts create|get|list|deposit`: tenant accounts and their credits.
#include <cstdio>
#include <random>

#include "controller/cli/command.h"
#include "controller/cli/records.h"

namespace morph::cli {

namespace {

struct AccountArgs {
  std::string account, display_name, reference, idempotency_key;
  int64_t amount = 0;
  bool json = false;
};
constexpr auto kAccount = record_in<&v1::ApiReply::body_as_AccountReply, &v1::AccountReply::account, account_json>;

// 128 random bits as hex: an idempotency key no other deposit will have.
std::string random_key() {
  std::random_device rd;
  char buf[33];
  std::snprintf(buf, sizeof buf, "%08x%08x%08x%08x", rd(), rd(), rd(), rd());
  return std::string("morphctl-") + buf;
}

}  // namespace

void add_accounts(Commands& c) {
  auto* accounts = c.noun("accounts", "tenant accounts");

  auto create = verb<AccountArgs>(accounts, "create", "admin: open an account with a zero balance");
  create.cmd->add_option("account", create.args->account, "account name")->required();
  create.cmd->add_option("--display-name", create.args->display_name, "human name");
  c.request(
      create, {"morphctl accounts create acme --display-name \"Acme Ltd\""}, v1::ApiRequestBody::AccountCreate,
      [a = create.args](Builder& b) {
        return v1::CreateAccountCreateDirect(b, a->account.c_str(), a->display_name.c_str()).Union();
      },
      kAccount);

  auto get = verb<AccountArgs>(accounts, "get", "balance and reserved credits of an account");
  get.cmd->add_option("account", get.args->account, "account name")->required();
  c.request(
      get, {"morphctl accounts get acme --json"}, v1::ApiRequestBody::AccountGet,
      [a = get.args](Builder& b) { return v1::CreateAccountGetDirect(b, a->account.c_str()).Union(); }, kAccount);

  auto list = verb<AccountArgs>(accounts, "list", "accounts you may see");
  c.request(
      list, {"morphctl accounts list --json"}, v1::ApiRequestBody::AccountList,
      [](Builder& b) { return v1::CreateAccountList(b).Union(); },
      rows_in<&v1::ApiReply::body_as_AccountListReply, &v1::AccountListReply::accounts, account_json>);

  auto deposit = verb<AccountArgs>(accounts, "deposit", "admin: credit an account (micro-credits)");
  deposit.cmd->add_option("account", deposit.args->account, "account name")->required();
  deposit.cmd->add_option("amount", deposit.args->amount, "micro-credits, > 0")->required()->check(CLI::PositiveNumber);
  deposit.cmd->add_option("--reference", deposit.args->reference, "note recorded with the deposit");
  deposit.cmd->add_option("--idempotency-key", deposit.args->idempotency_key,
                          "a retry with the same key and amount is credited once ([A-Za-z0-9._-]; default: a fresh "
                          "random key, so this command's own resends are safe)");
  c.on(deposit, {"morphctl accounts deposit acme 5000000 --reference invoice-42 --idempotency-key invoice-42"},
       [a = deposit.args](Session& s) {
         // Without a key of the caller's, a fresh one: a reply lost on the way back is asked for again (up to 3
         // times) under the same key, so the deposit is credited once. A caller that retries across runs of
         // morphctl passes its own key.
         const std::string key = a->idempotency_key.empty() ? random_key() : a->idempotency_key;
         const auto& reply = s.client.call(
             v1::ApiRequestBody::AccountDeposit,
             [&](Builder& b) {
               return v1::CreateAccountDepositDirect(b, a->account.c_str(), a->amount, a->reference.c_str(),
                                                     key.c_str())
                   .Union();
             },
             3);
         json j = kAccount(reply);
         j["deposit_entry_id"] = expect(reply.body_as_AccountReply()).deposit_entry();
         j["idempotency_key"] = key;
         j["replayed"] = expect(reply.body_as_AccountReply()).deposit_replayed();
         print(j, a->json, s.out);
         return kOk;
       });
}

}  // namespace morph::cli
