// `morphctl allocations list`: the allocations in force after the last tick.
#include "controller/cli/command.h"
#include "controller/cli/records.h"

namespace morph::cli {

void add_allocations(Commands& c) {
  struct AllocationArgs {
    std::string host, vm, account;
    bool json = false;
  };
  auto list = verb<AllocationArgs>(c.noun("allocations", "allocations in force"), "list",
                                   "allocations in force after the last tick");
  list.cmd->add_option("--host", list.args->host, "only this host");
  list.cmd->add_option("--vm", list.args->vm, "only this VM");
  list.cmd->add_option("--account", list.args->account, "only this account");
  c.request(
      list, {"morphctl allocations list --account acme", "morphctl allocations list --json"},
      v1::ApiRequestBody::AllocationsQuery,
      [a = list.args](Builder& b) {
        return v1::CreateAllocationsQueryDirect(b, a->host.c_str(), a->vm.c_str(), a->account.c_str()).Union();
      },
      rows_in<&v1::ApiReply::body_as_AllocationsReply, &v1::AllocationsReply::allocations, allocation_json>);
}

}  // namespace morph::cli
