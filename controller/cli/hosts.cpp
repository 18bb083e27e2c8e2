// `morphctl hosts list`: the hosts the controller knows, up or down, with their capacity.
#include "controller/cli/command.h"
#include "controller/cli/records.h"

namespace morph::cli {

void add_hosts(Commands& c) {
  struct HostArgs {
    bool json = false;
  };
  auto list = verb<HostArgs>(c.noun("hosts", "hosts known to the controller"), "list", "list hosts, up or down");
  c.request(
      list, {"morphctl hosts list", "morphctl --connect ipc:///run/morph/api hosts list --json"},
      v1::ApiRequestBody::HostsQuery, [](Builder& b) { return v1::CreateHostsQuery(b).Union(); },
      rows_in<&v1::ApiReply::body_as_HostsReply, &v1::HostsReply::hosts, host_json>);
}

}  // namespace morph::cli
