// `morphctl kpis show [VM]`: the latest KPI interval per VM, as the controller last received it.
#include "controller/cli/command.h"
#include "controller/cli/records.h"

namespace morph::cli {

namespace {

// Every VM of every host's latest report, or only the one named (by uuid or name).
json kpi_rows(const v1::ApiReply& reply, const std::string& only) {
  json rows = json::array();
  if (const auto* r = reply.body_as_KpisReply(); r && r->reports())
    for (const auto* rep : *r->reports()) {
      if (!rep->vms()) continue;
      for (const auto* k : *rep->vms())
        if (only.empty() || msg::sv(k->uuid()) == only || msg::sv(k->name()) == only)
          rows.push_back(kpi_json(std::string(msg::sv(rep->host())), *k));
    }
  return rows;
}

}  // namespace

void add_kpis(Commands& c) {
  struct KpiArgs {
    std::string vm;
    bool json = false;
  };
  auto show = verb<KpiArgs>(c.noun("kpis", "latest KPIs"), "show",
                            "latest KPI interval per VM (run-queue wait share, drops, ...)");
  show.cmd->add_option("vm", show.args->vm, "only this VM (uuid or name)");
  c.on(show, {"morphctl kpis show", "morphctl kpis show demo-vm1 --json"}, [a = show.args](Session& s) {
    const auto& reply = s.client.call(v1::ApiRequestBody::KpisQuery,
                                      [](Builder& b) { return v1::CreateKpisQueryDirect(b, "", "").Union(); });
    json rows = kpi_rows(reply, a->vm);
    if (!a->vm.empty() && rows.empty()) fail(kRefused, "no KPIs for VM " + a->vm);
    print(rows, a->json, s.out);
    return kOk;
  });
}

}  // namespace morph::cli
