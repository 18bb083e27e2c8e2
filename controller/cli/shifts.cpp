// `morphctl shifts list`: the shift commands the market sent for allocations, and what became of them.
#include "controller/cli/command.h"
#include "controller/cli/records.h"

namespace morph::cli {

void add_shifts(Commands& c) {
  struct ShiftArgs {
    std::string host;
    uint32_t limit = 100;
    bool json = false;
  };
  auto list = verb<ShiftArgs>(c.noun("shifts", "shift commands sent for allocations"), "list",
                              "recent shift commands and their results");
  list.cmd->add_option("--host", list.args->host, "only this host");
  list.cmd->add_option("--limit", list.args->limit, "at most this many (newest)");
  c.request(
      list, {"morphctl shifts list --host host-a --limit 20", "morphctl shifts list --json"},
      v1::ApiRequestBody::ShiftsQuery,
      [a = list.args](Builder& b) { return v1::CreateShiftsQueryDirect(b, a->host.c_str(), a->limit).Union(); },
      rows_in<&v1::ApiReply::body_as_ShiftsReply, &v1::ShiftsReply::shifts, shift_json>);
}

}  // namespace morph::cli
