// `morphctl prices list`: the last cleared price per host, resource and tier.
#include "controller/cli/command.h"
#include "controller/cli/records.h"

namespace morph::cli {

void add_prices(Commands& c) {
  struct PriceArgs {
    std::string host;
    bool json = false;
  };
  auto list =
      verb<PriceArgs>(c.noun("prices", "cleared prices"), "list", "last cleared price per host, resource and tier");
  list.cmd->add_option("--host", list.args->host, "only this host");
  c.request(
      list, {"morphctl prices list --host host-a", "morphctl prices list --json"}, v1::ApiRequestBody::PricesQuery,
      [a = list.args](Builder& b) { return v1::CreatePricesQueryDirect(b, a->host.c_str()).Union(); },
      rows_in<&v1::ApiReply::body_as_PricesReply, &v1::PricesReply::prices, price_json>);
}

}  // namespace morph::cli
