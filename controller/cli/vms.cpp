// `morphctl vms list|set-owner`: the VMs the agents report, with baselines and owners; an admin's owner
// override.
#include "controller/cli/command.h"
#include "controller/cli/records.h"

namespace morph::cli {

namespace {

struct VmArgs {
  std::string host, vm, account;
  bool json = false;
};

// Entries without a VM record are skipped (an agent's report in progress).
json vm_rows(const v1::ApiReply& reply) {
  json rows = json::array();
  if (const auto* r = reply.body_as_VmsReply(); r && r->vms())
    for (const auto* v : *r->vms())
      if (v->vm()) rows.push_back(vm_json(*v));
  return rows;
}

}  // namespace

void add_vms(Commands& c) {
  auto* vms = c.noun("vms", "VMs reported by the agents");

  auto list = verb<VmArgs>(vms, "list", "list VMs with their baselines and owners");
  list.cmd->add_option("--host", list.args->host, "only this host");
  c.request(
      list, {"morphctl vms list --host host-a", "morphctl vms list --json"}, v1::ApiRequestBody::VmsQuery,
      [a = list.args](Builder& b) { return v1::CreateVmsQueryDirect(b, a->host.c_str()).Union(); }, vm_rows);

  auto owner = verb<VmArgs>(vms, "set-owner", "admin: make ACCOUNT the VM's owner, overriding the host's metadata");
  owner.cmd->add_option("vm", owner.args->vm, "VM uuid")->required();
  owner.cmd->add_option("account", owner.args->account, "account")->required();
  c.on(owner, {"morphctl vms set-owner 0f1e2d3c-... acme"}, [a = owner.args](Session& s) {
    s.client.call(v1::ApiRequestBody::VmOwnerSet,
                  [&](Builder& b) { return v1::CreateVmOwnerSetDirect(b, a->vm.c_str(), a->account.c_str()).Union(); });
    if (a->json)
      print({{"vm", a->vm}, {"owner", a->account}}, true, s.out);
    else
      s.out << "vm " << a->vm << " owned by " << a->account << "\n";
    return kOk;
  });
}

}  // namespace morph::cli
