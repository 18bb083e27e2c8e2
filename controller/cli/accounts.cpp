// `morphctl accounts create|get|list|deposit`: tenant accounts and their credits.
#include "controller/cli/command.h"
#include "controller/cli/records.h"

namespace morph::cli {

namespace {

struct AccountArgs {
  std::string account, display_name, reference;
  int64_t amount = 0;
  bool json = false;
};
constexpr auto kAccount = record_in<&v1::ApiReply::body_as_AccountReply, &v1::AccountReply::account, account_json>;

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
  c.request(
      deposit, {"morphctl accounts deposit acme 5000000 --reference invoice-42"}, v1::ApiRequestBody::AccountDeposit,
      [a = deposit.args](Builder& b) {
        return v1::CreateAccountDepositDirect(b, a->account.c_str(), a->amount, a->reference.c_str()).Union();
      },
      kAccount);
}

}  // namespace morph::cli
