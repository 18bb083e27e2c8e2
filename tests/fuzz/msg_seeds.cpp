// Writes one valid message of each wire type into DIR/<decoder>/seed, so each fuzzer starts past the
// identifier and verifier checks instead of rediscovering the format.
#include <sys/stat.h>

#include <fstream>
#include <string>

#include "common/msg/migrate.h"
#include "common/msg/shift.h"
#include "common/msg/wire.h"

using namespace morph;

static void put(const std::string& dir, const std::string& name, const flatbuffers::FlatBufferBuilder& fbb,
                const std::string& file = "seed") {
  std::string d = dir + "/" + name;
  ::mkdir(d.c_str(), 0700);
  std::ofstream(d + "/" + file, std::ios::binary)
      .write(reinterpret_cast<const char*>(fbb.GetBufferPointer()), static_cast<std::streamsize>(fbb.GetSize()));
}

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  std::string dir = argv[1];
  ::mkdir(dir.c_str(), 0700);
  const char* uuid = "11111111-2222-4333-8444-555555555555";
  flatbuffers::FlatBufferBuilder f;
  kpi::VmKpis k;
  k.uuid = uuid;
  k.name = "vm";
  k.cpu_run_ns = 1000;
  k.runq_lat_us[3] = 2;
  msg::encode_kpi_report(f, {"host-a", 1, 1, 1'000'000'000, 1}, {k, k});
  put(dir, "decode_kpi_report", f);
  {
    flatbuffers::FlatBufferBuilder b;  // one bad VM between two good ones: the lenient path's case
    kpi::VmKpis spoilt = k;
    spoilt.cpu_wait_ns = ~0ULL;
    msg::encode_kpi_report(b, {"host-a", 2, 1, 1'000'000'000, 1}, {k, spoilt, k});
    put(dir, "decode_kpi_report", b, "seed-bad-vm");
  }
  flatbuffers::FlatBufferBuilder ev;
  ev.ForceVectorAlignment(f.GetSize(), 1, 8);
  auto nested = ev.CreateVector(f.GetBufferPointer(), f.GetSize());
  ev.Finish(v1::CreateMarketEvent(ev, 1, 1, 1, v1::MarketEventBody::KpiUpdate, v1::CreateKpiUpdate(ev, nested).Union()),
            v1::MarketEventIdentifier());
  put(dir, "decode_market_event", ev);
  {
    flatbuffers::FlatBufferBuilder m;  // a move the controller learned of
    m.Finish(v1::CreateMarketEvent(m, 2, 1, 1, v1::MarketEventBody::VmMigrated,
                                   v1::CreateVmMigratedDirect(m, uuid, "host-a", "host-b").Union()),
             v1::MarketEventIdentifier());
    put(dir, "decode_market_event", m, "seed-vm-migrated");
  }
  f.Clear();
  std::vector<flatbuffers::Offset<v1::ResourceAmount>> base{v1::CreateResourceAmount(f, v1::Resource::cpu, 1000)};
  std::vector<flatbuffers::Offset<v1::VmBaselineInfo>> vms{
      v1::CreateVmBaselineInfoDirect(f, uuid, "vm", "acct", "gold", true, &base, 1024)};
  f.Finish(v1::CreateHostHelloDirect(f, "host-a", 1, 1, "0.1", &base, &vms, 1'000'000'000), v1::HostHelloIdentifier());
  put(dir, "decode_host_hello", f);
  f.Clear();
  f.Finish(v1::CreateHeartbeatDirect(f, "host-a", 1, 1, 1), v1::HeartbeatIdentifier());
  put(dir, "decode_heartbeat", f);
  f.Clear();
  msg::ShiftOrder o{
      1, uuid, {{v1::Resource::cpu, 1500, ""}, {v1::Resource::migrate, 0, "host-b"}}, 5'000'000'000ULL, 1};
  msg::encode_shift_command(f, o);
  put(dir, "decode_shift_command", f);
  f.Clear();
  msg::ShiftOutcome r;
  r.command_id = 1;
  r.vm_uuid = uuid;
  r.in_force = o.adjustments;
  r.error = v1::ErrorCode::conflict;
  r.error_message = "x";
  msg::encode_shift_result(f, "host-a", r);
  put(dir, "decode_shift_result", f);
  f.Clear();
  msg::encode_lease_renew(f, {uuid, {1, 2}, 5'000'000'000ULL});
  put(dir, "decode_lease_renew", f);
  f.Clear();
  msg::encode_migrate_command(f, {.command_id = 2,
                                  .vm_uuid = uuid,
                                  .destination_host = "host-b",
                                  .destination_uri = "qemu+tcp://host-b/system",
                                  .transport_uri = "tcp://10.0.0.2:49152",
                                  .max_downtime_ms = 300,
                                  .postcopy = true});
  put(dir, "decode_migrate_command", f);
  f.Clear();
  msg::MigrateOutcome mr{.command_id = 2,
                         .vm_uuid = uuid,
                         .destination_host = "host-b",
                         .state = v1::MigrationState::failed,
                         .total_ms = 812,
                         .bytes = 1 << 20,
                         .error = v1::ErrorCode::unavailable,
                         .error_message = "timed out"};
  msg::encode_migrate_result(f, "host-a", mr);
  put(dir, "decode_migrate_result", f);
  f.Clear();
  auto bid = v1::CreateBidSubmitDirect(f, "acct", uuid, v1::Resource::cpu, 500, 100, 40);
  f.Finish(v1::CreateApiRequest(f, 1, v1::ApiRequestBody::BidSubmit, bid.Union(), 1), v1::ApiRequestIdentifier());
  put(dir, "decode_api_request", f);
  f.Clear();
  auto err = v1::CreateErrorDirect(f, v1::ErrorCode::unavailable, "no market");
  std::vector<flatbuffers::Offset<v1::HostStatus>> hs{v1::CreateHostStatusDirect(f, "host-a", true)};
  auto hosts = v1::CreateHostsReplyDirect(f, &hs);
  f.Finish(v1::CreateApiReply(f, 1, err, v1::ApiReplyBody::HostsReply, hosts.Union(), 1), v1::ApiReplyIdentifier());
  put(dir, "decode_api_reply", f);
  return 0;
}
