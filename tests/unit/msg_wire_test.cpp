// Wire decoding, keys and the allow-list, without sockets: every decoder refuses what it must and accepts
// what the encoders produce.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <random>

#include "common/msg/bad_messages.h"
#include "common/msg/curve_keys.h"
#include "common/msg/shift.h"
#include "common/msg/socket.h"
#include "common/msg/wire.h"

namespace morph::msg {
namespace {

kpi::VmKpis vm(int i) {
  kpi::VmKpis k;
  k.uuid = "11111111-2222-4333-8444-" + std::to_string(100000000000 + i);
  k.name = "vm" + std::to_string(i);
  k.interval_ns = 1'000'000'000;
  k.cpu_run_ns = 300'000'000 + i;
  k.cpu_wait_ns = 1234 * i;
  k.runq_lat_us[3] = 7 + i;
  k.blk_lat_us[26] = 1;
  k.net_tx_bytes = 99'000 + i;
  k.mem_rss_bytes = 1ull << 30;
  return k;
}

std::vector<uint8_t> report(std::vector<kpi::VmKpis> vms, uint64_t interval = 1'000'000'000) {
  flatbuffers::FlatBufferBuilder fbb;
  encode_kpi_report(fbb, {"host-a", 7, 42, interval, now_ns()}, vms);
  return {fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize()};
}

// Every Errc travels as the wire's error code of the same name; one from outside the enum as internal.
TEST(Wire, ErrorCodesAreTheErrcsByName) {
  for (int i = 0; i <= static_cast<int>(Errc::internal); ++i) {
    const auto c = static_cast<Errc>(i);
    EXPECT_STREQ(v1::EnumNameErrorCode(msg::wire_code(c)), errc_name(c));
  }
  EXPECT_EQ(msg::wire_code(static_cast<Errc>(99)), v1::ErrorCode::internal);
}

TEST(Wire, KpiReportRoundTripsEveryField) {
  std::vector<kpi::VmKpis> in{vm(1), vm(2)};
  auto buf = report(in);
  auto r = decode_kpi_report(buf);
  ASSERT_TRUE(r) << r.error().describe();
  EXPECT_EQ(sv((*r)->host()), "host-a");
  EXPECT_EQ((*r)->seq(), 7u);
  ASSERT_EQ((*r)->vms()->size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    auto out = to_vm_kpis(*(*r)->vms()->Get(i));
    EXPECT_EQ(out.uuid, in[i].uuid);
    EXPECT_EQ(out.cpu_run_ns, in[i].cpu_run_ns);
    EXPECT_EQ(out.cpu_wait_ns, in[i].cpu_wait_ns);
    EXPECT_EQ(out.runq_lat_us, in[i].runq_lat_us);
    EXPECT_EQ(out.blk_lat_us, in[i].blk_lat_us);
    EXPECT_EQ(out.net_tx_bytes, in[i].net_tx_bytes);
    EXPECT_EQ(out.mem_rss_bytes, in[i].mem_rss_bytes);
  }
}

TEST(Wire, RefusesTruncatedWrongIdentifierAndRandomBytes) {
  auto buf = report({vm(1)});
  for (size_t cut : {size_t(0), size_t(4), size_t(7), buf.size() / 2}) {  // (the tail may be padding)
    auto r = decode_kpi_report({buf.data(), cut});
    ASSERT_FALSE(r) << "cut at " << cut;
    EXPECT_EQ(r.error().code(), Errc::protocol);
  }
  auto copy = buf;
  copy[4] = 'X';  // file_identifier lives at bytes 4..7
  EXPECT_NE(decode_kpi_report(copy).error().message().find("file_identifier"), std::string::npos);
  // A valid buffer of another root type is refused by every other decoder.
  EXPECT_FALSE(decode_host_hello(buf));
  EXPECT_FALSE(decode_heartbeat(buf));
  EXPECT_FALSE(decode_api_request(buf));
  std::mt19937 rng(1);
  for (int i = 0; i < 2000; ++i) {
    std::vector<uint8_t> junk(rng() % 512);
    for (auto& b : junk) b = uint8_t(rng());
    if (junk.size() >= 8 && i % 2) std::memcpy(junk.data() + 4, "MKPI", 4);  // get past the identifier check
    EXPECT_FALSE(decode_kpi_report(junk));
  }
}

TEST(Wire, RefusesOutOfRangeValues) {
  EXPECT_NE(decode_kpi_report(report({vm(1)}, 10'000'000)).error().message().find("interval_ns"), std::string::npos);
  EXPECT_FALSE(decode_kpi_report(report({vm(1)}, 61'000'000'000ULL)));
  auto absurd = vm(1);
  absurd.cpu_run_ns = 5000ULL * 1'000'000'000ULL;  // 5000 CPUs busy for a 1 s interval
  EXPECT_NE(decode_kpi_report(report({absurd})).error().message().find("cpu time"), std::string::npos);
  auto bad_uuid = vm(1);
  bad_uuid.uuid = "../../etc";
  EXPECT_FALSE(decode_kpi_report(report({bad_uuid})));
  // A histogram of the wrong length, built by hand.
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<uint32_t> h(26, 1);
  auto k = v1::CreateVmKpiDirect(fbb, "11111111-2222-4333-8444-555555555555", "x", 0, 0, 0, 0, &h);
  std::vector<flatbuffers::Offset<v1::VmKpi>> ks{k};
  fbb.Finish(v1::CreateKpiReportDirect(fbb, "host-a", 1, 1, 1'000'000'000, 1, &ks), v1::KpiReportIdentifier());
  auto r = decode_kpi_report(span_of(fbb));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("26 buckets"), std::string::npos) << r.error().message();
}

// Every field of two decoded VM entries, compared one by one.
void expect_same_vm(const kpi::VmKpis& a, const kpi::VmKpis& b) {
  EXPECT_EQ(a.uuid, b.uuid);
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.interval_ns, b.interval_ns);
  EXPECT_EQ(a.cpu_run_ns, b.cpu_run_ns);
  EXPECT_EQ(a.cpu_wait_ns, b.cpu_wait_ns);
  EXPECT_EQ(a.cpu_throttled_ns, b.cpu_throttled_ns);
  EXPECT_EQ(a.runq_lat_us, b.runq_lat_us);
  EXPECT_EQ(a.blk_read_bytes, b.blk_read_bytes);
  EXPECT_EQ(a.blk_write_bytes, b.blk_write_bytes);
  EXPECT_EQ(a.blk_read_ops, b.blk_read_ops);
  EXPECT_EQ(a.blk_write_ops, b.blk_write_ops);
  EXPECT_EQ(a.blk_lat_us, b.blk_lat_us);
  EXPECT_EQ(a.net_rx_bytes, b.net_rx_bytes);
  EXPECT_EQ(a.net_tx_bytes, b.net_tx_bytes);
  EXPECT_EQ(a.net_rx_pkts, b.net_rx_pkts);
  EXPECT_EQ(a.net_tx_pkts, b.net_tx_pkts);
  EXPECT_EQ(a.net_rx_drops, b.net_rx_drops);
  EXPECT_EQ(a.net_tx_drops, b.net_tx_drops);
  EXPECT_EQ(a.mem_major_faults, b.mem_major_faults);
  EXPECT_EQ(a.mem_minor_faults, b.mem_minor_faults);
  EXPECT_EQ(a.mem_rss_bytes, b.mem_rss_bytes);
  EXPECT_EQ(a.mem_balloon_kib, b.mem_balloon_kib);
  EXPECT_EQ(a.net_rx_policed_bytes, b.net_rx_policed_bytes);
  EXPECT_EQ(a.net_tx_policed_bytes, b.net_tx_policed_bytes);
}

// A VM with every field set to a distinct non-zero value (so the encoder writes every field).
kpi::VmKpis full_vm(int i) {
  auto k = vm(i);
  uint64_t v = 1000 * uint64_t(i);
  k.cpu_throttled_ns = ++v;
  k.blk_read_bytes = ++v;
  k.blk_write_bytes = ++v;
  k.blk_read_ops = ++v;
  k.blk_write_ops = ++v;
  k.net_rx_bytes = ++v;
  k.net_rx_pkts = ++v;
  k.net_tx_pkts = ++v;
  k.net_rx_drops = ++v;
  k.net_tx_drops = ++v;
  k.mem_major_faults = ++v;
  k.mem_minor_faults = ++v;
  k.mem_balloon_kib = ++v;
  k.net_rx_policed_bytes = ++v;
  k.net_tx_policed_bytes = ++v;
  for (int b = 0; b < kpi::kHistBuckets; ++b) k.runq_lat_us[b] = k.blk_lat_us[b] = uint64_t(b + i + 1);
  return k;
}

TEST(Wire, KpiReportWithOneBadVmKeepsTheGoodOnes) {
  struct Case {
    const char* what;
    void (*spoil)(kpi::VmKpis&);
    std::vector<std::string> reason_has;  // the VM and the field
  };
  constexpr uint64_t kSecond = 1'000'000'000ULL;
  const std::string u1 = vm(1).uuid;
  const std::vector<Case> cases{
      {"run-queue wait beyond interval x 4096 cpus",
       [](kpi::VmKpis& k) { k.cpu_wait_ns = 4097 * kSecond; },
       {"vm=" + u1, "cpu_wait_ns=4097000000000"}},
      {"run time beyond interval x 4096 cpus",
       [](kpi::VmKpis& k) { k.cpu_run_ns = 5000 * kSecond; },
       {"vm=" + u1, "cpu_run_ns=", "cpu time"}},
      {"uuid that is not a UUID",
       [](kpi::VmKpis& k) { k.uuid = "../../etc"; },
       {"vm #1 uuid=\"../../etc\"", "uuid is not a UUID"}},
      {"uuid that is not printable",
       [](kpi::VmKpis& k) { k.uuid = std::string("\x01\x7f x", 4); },
       {"vm #1 (uuid not printable)", "uuid is not a UUID"}},
      {"VM interval below 50 ms",
       [](kpi::VmKpis& k) { k.interval_ns = 10'000'000; },
       {"vm=" + u1, "interval_ns=10000000"}},
      {"VM interval above 120 s",
       [](kpi::VmKpis& k) { k.interval_ns = 121 * kSecond; },
       {"vm=" + u1, "interval_ns=121000000000"}},
      {"name longer than 255", [](kpi::VmKpis& k) { k.name = std::string(256, 'n'); }, {"vm=" + u1, "name"}},
      {"absurd byte counter",
       [](kpi::VmKpis& k) { k.net_rx_bytes = 1ULL << 62; },
       {"vm=" + u1, "net_rx_bytes=" + std::to_string(1ULL << 62)}},
      {"absurd policed byte counter",
       [](kpi::VmKpis& k) { k.net_tx_policed_bytes = 1ULL << 62; },
       {"vm=" + u1, "net_tx_policed_bytes=" + std::to_string(1ULL << 62)}},
      {"absurd event counter",
       [](kpi::VmKpis& k) { k.mem_minor_faults = 1ULL << 40; },
       {"vm=" + u1, "mem_minor_faults="}},
      {"absurd memory gauge", [](kpi::VmKpis& k) { k.mem_balloon_kib = 1ULL << 60; }, {"vm=" + u1, "mem_balloon_kib="}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    std::vector<kpi::VmKpis> in{full_vm(0), full_vm(1), full_vm(2)};
    c.spoil(in[1]);
    auto buf = report(in);
    EXPECT_FALSE(decode_kpi_report(buf)) << "the strict decoder still refuses the whole report";
    auto r = decode_kpi_report_lenient(buf);
    ASSERT_TRUE(r) << r.error().describe();
    ASSERT_EQ(r->dropped.size(), 1u);
    EXPECT_EQ(r->dropped[0].index, 1u);
    EXPECT_NE(r->dropped[0].reason.find("host=host-a"), std::string::npos) << r->dropped[0].reason;
    for (auto& s : c.reason_has) EXPECT_NE(r->dropped[0].reason.find(s), std::string::npos) << r->dropped[0].reason;
    flatbuffers::FlatBufferBuilder fbb;
    rebuild_kpi_report(fbb, *r->report, r->dropped);
    auto good = decode_kpi_report(span_of(fbb));  // the rebuilt report passes the strict checks
    ASSERT_TRUE(good) << good.error().describe();
    EXPECT_EQ(sv((*good)->host()), "host-a");
    EXPECT_EQ((*good)->seq(), 7u);
    EXPECT_EQ((*good)->incarnation(), 42u);
    EXPECT_EQ((*good)->interval_ns(), r->report->interval_ns());
    EXPECT_EQ((*good)->timestamp_ns(), r->report->timestamp_ns());
    ASSERT_EQ((*good)->vms()->size(), 2u);
    expect_same_vm(to_vm_kpis(*(*good)->vms()->Get(0)), in[0]);
    expect_same_vm(to_vm_kpis(*(*good)->vms()->Get(1)), in[2]);
  }
}

TEST(Wire, KpiReportWithBadHistogramsAndEveryVmBadKeepsTheHeader) {
  // Histograms of the wrong length on VMs 0 and 2, built by hand; VM 1 has none at all (allowed: ingest
  // keeps its last histogram), and keeps having none after the rebuild.
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<uint32_t> h26(26, 1), h28(28, 1);
  std::vector<flatbuffers::Offset<v1::VmKpi>> ks{
      v1::CreateVmKpiDirect(fbb, "11111111-2222-4333-8444-000000000000", "a", 0, 1, 0, 0, &h26),
      v1::CreateVmKpiDirect(fbb, "11111111-2222-4333-8444-000000000001", nullptr, 0, 2),
      v1::CreateVmKpiDirect(fbb, "11111111-2222-4333-8444-000000000002", "c", 0, 3, 0, 0, nullptr, 0, 0, 0, 0, &h28)};
  fbb.Finish(v1::CreateKpiReportDirect(fbb, "host-a", 1, 1, 1'000'000'000, 1, &ks), v1::KpiReportIdentifier());
  auto r = decode_kpi_report_lenient(span_of(fbb));
  ASSERT_TRUE(r) << r.error().describe();
  ASSERT_EQ(r->dropped.size(), 2u);
  EXPECT_NE(r->dropped[0].reason.find("vm=11111111-2222-4333-8444-000000000000: runq_lat_us: histogram has 26 buckets"),
            std::string::npos)
      << r->dropped[0].reason;
  EXPECT_NE(r->dropped[1].reason.find("blk_lat_us: histogram has 28 buckets"), std::string::npos)
      << r->dropped[1].reason;
  flatbuffers::FlatBufferBuilder out;
  rebuild_kpi_report(out, *r->report, r->dropped);
  auto good = decode_kpi_report(span_of(out));
  ASSERT_TRUE(good) << good.error().describe();
  ASSERT_EQ((*good)->vms()->size(), 1u);
  auto* k = (*good)->vms()->Get(0);
  EXPECT_EQ(sv(k->uuid()), "11111111-2222-4333-8444-000000000001");
  EXPECT_EQ(k->name(), nullptr);
  EXPECT_EQ(k->runq_lat_us(), nullptr);
  EXPECT_EQ(k->blk_lat_us(), nullptr);
  EXPECT_EQ(k->cpu_run_ns(), 2u);
  // Every VM bad: the header still goes through (seq tracking, the host's liveness), with no VMs.
  std::vector<DroppedVm> all{{0, "x"}, {1, "y"}, {2, "z"}};
  rebuild_kpi_report(out, *r->report, all);
  auto none = decode_kpi_report(span_of(out));
  ASSERT_TRUE(none) << none.error().describe();
  EXPECT_EQ(sv((*none)->host()), "host-a");
  EXPECT_EQ((*none)->vms()->size(), 0u);
}

TEST(Wire, KpiReportRebuildCopiesEveryVmKpiField) {
  // The rebuilt entry must carry every field the encoder writes: same vtable, field by field (a field added
  // to the schema and the encoder but not to rebuild_kpi_report fails here).
  auto buf = report({full_vm(1), full_vm(2)});
  auto r = decode_kpi_report_lenient(buf);
  ASSERT_TRUE(r);
  std::vector<DroppedVm> drop_second{{1, "test"}};
  flatbuffers::FlatBufferBuilder fbb;
  rebuild_kpi_report(fbb, *r->report, drop_second);
  auto good = decode_kpi_report(span_of(fbb));
  ASSERT_TRUE(good);
  auto vtable_of = [](const v1::VmKpi* k) { return reinterpret_cast<const flatbuffers::Table*>(k)->GetVTable(); };
  const auto* a = r->report->vms()->Get(0);
  const auto* b = (*good)->vms()->Get(0);
  auto size_a = flatbuffers::ReadScalar<flatbuffers::voffset_t>(vtable_of(a));
  ASSERT_EQ(size_a, flatbuffers::ReadScalar<flatbuffers::voffset_t>(vtable_of(b)));
  EXPECT_EQ(size_a, v1::VmKpi::VT_NET_TX_POLICED_BYTES + 2) << "full_vm() no longer sets every field";
  for (flatbuffers::voffset_t vo = 4; vo < size_a; vo += 2) {
    auto* ta = reinterpret_cast<const flatbuffers::Table*>(a);
    auto* tb = reinterpret_cast<const flatbuffers::Table*>(b);
    EXPECT_EQ(ta->GetOptionalFieldOffset(vo) != 0, tb->GetOptionalFieldOffset(vo) != 0) << "field at vtable " << vo;
  }
  expect_same_vm(to_vm_kpis(*b), to_vm_kpis(*a));
}

TEST(Wire, KpiReportHeaderFaultsStillRejectTheWholeReport) {
  EXPECT_NE(decode_kpi_report_lenient(report({vm(1)}, 10'000'000)).error().message().find("interval_ns"),
            std::string::npos);
  EXPECT_FALSE(decode_kpi_report_lenient(report({vm(1)}, 61'000'000'000ULL)));
  auto buf = report({vm(1), vm(2)});
  auto wrong_ident = buf;
  wrong_ident[4] = 'X';
  EXPECT_NE(decode_kpi_report_lenient(wrong_ident).error().message().find("file_identifier"), std::string::npos);
  EXPECT_FALSE(decode_kpi_report_lenient({buf.data(), buf.size() / 2}));
  flatbuffers::FlatBufferBuilder fbb;
  encode_kpi_report(fbb, {"host a/../b", 1, 1, 1'000'000'000, 1}, {vm(1)});
  EXPECT_NE(decode_kpi_report_lenient(span_of(fbb)).error().message().find("host"), std::string::npos);
  std::vector<kpi::VmKpis> many(Limits::kMaxVms + 1, vm(1));
  fbb.Clear();
  encode_kpi_report(fbb, {"host-a", 1, 1, 1'000'000'000, 1}, many);
  EXPECT_NE(decode_kpi_report_lenient(span_of(fbb)).error().message().find("too many VMs"), std::string::npos);
}

TEST(Wire, MarketEventKpiUpdateWithOneBadVmIsKeptForTheConsumerToFilter) {
  auto spoilt = vm(2);
  spoilt.cpu_wait_ns = 5000ULL * 1'000'000'000ULL;
  auto nest = [](const std::vector<uint8_t>& rep) {
    flatbuffers::FlatBufferBuilder ev;
    ev.ForceVectorAlignment(rep.size(), 1, 8);
    auto v = ev.CreateVector(rep.data(), rep.size());
    ev.Finish(v1::CreateMarketEvent(ev, 1, 1, 1, v1::MarketEventBody::KpiUpdate, v1::CreateKpiUpdate(ev, v).Union()),
              v1::MarketEventIdentifier());
    return std::vector<uint8_t>(ev.GetBufferPointer(), ev.GetBufferPointer() + ev.GetSize());
  };
  auto ev = nest(report({vm(1), spoilt, vm(3)}));
  auto e = decode_market_event(ev);
  ASSERT_TRUE(e) << e.error().describe();
  auto* nested = (*e)->body_as_KpiUpdate()->report();
  std::vector<uint8_t> copy(nested->begin(), nested->end());
  auto r = decode_kpi_report_lenient(copy);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->dropped.size(), 1u);
  EXPECT_NE(r->dropped[0].reason.find("cpu_wait_ns"), std::string::npos);
  // A nested report with a header fault still makes the event an error.
  EXPECT_FALSE(decode_market_event(nest(report({vm(1)}, 10'000'000))));
}

TEST(Wire, MarketEventVmMigratedNamesAVmAndTwoDifferentHosts) {
  auto event = [](const char* uuid, const char* from, const char* to) {
    flatbuffers::FlatBufferBuilder ev;
    ev.Finish(v1::CreateMarketEvent(ev, 1, 1, 1, v1::MarketEventBody::VmMigrated,
                                    v1::CreateVmMigratedDirect(ev, uuid, from, to).Union()),
              v1::MarketEventIdentifier());
    return std::vector<uint8_t>(ev.GetBufferPointer(), ev.GetBufferPointer() + ev.GetSize());
  };
  const char* uuid = "11111111-2222-4333-8444-555555555555";
  auto ok = decode_market_event(event(uuid, "h1", "h2"));
  ASSERT_TRUE(ok) << ok.error().describe();
  EXPECT_EQ((*ok)->body_as_VmMigrated()->to_host()->str(), "h2");
  EXPECT_FALSE(decode_market_event(event(uuid, "h1", "h1")));
  EXPECT_FALSE(decode_market_event(event(uuid, "h1", "h/../2")));
  EXPECT_FALSE(decode_market_event(event("vm/../1", "h1", "h2")));
}

TEST(Wire, ShiftCommandRoundTripAndLimits) {
  ShiftOrder o{9,
               "11111111-2222-4333-8444-555555555555",
               {{Resource::cpu, 1500, ""}, {Resource::vcpu_pin, 2, "2-3"}},
               5'000'000'000ULL,
               1};
  flatbuffers::FlatBufferBuilder fbb;
  encode_shift_command(fbb, o);
  auto c = decode_shift_command(span_of(fbb));
  ASSERT_TRUE(c) << c.error().describe();
  auto back = to_shift_order(**c);
  EXPECT_EQ(back.command_id, 9u);
  EXPECT_EQ(back.adjustments, o.adjustments);
  o.adjustments.push_back({Resource::memory, -5, ""});
  fbb.Clear();
  encode_shift_command(fbb, o);
  EXPECT_FALSE(decode_shift_command(span_of(fbb)));
}

TEST(Wire, ShiftResultCarriesWhatKindOfAnswerItIs) {
  ShiftOutcome r;
  r.command_id = 77;
  r.vm_uuid = "11111111-2222-4333-8444-555555555555";
  r.in_force = {{Resource::cpu, 750, ""}};
  r.lease_expires_ns = 123;
  auto round_trip = [](const ShiftOutcome& o) {
    flatbuffers::FlatBufferBuilder fbb;
    encode_shift_result(fbb, "host-a", o);
    auto d = decode_shift_result(span_of(fbb));
    EXPECT_TRUE(d) << d.error().describe();
    return to_shift_outcome(**d);
  };
  auto applied = round_trip(r);
  EXPECT_EQ(applied.in_force, r.in_force);
  EXPECT_EQ(applied.lease_expires_ns, 123u);
  EXPECT_STREQ(applied.phase(), "applied");
  r.restated = true;  // an agent restating a lease on reconnect
  auto restated = round_trip(r);
  EXPECT_TRUE(restated.restated);
  EXPECT_FALSE(restated.reverted);
  EXPECT_STREQ(restated.phase(), "in_force");
  r.restated = false;
  r.reverted = true;
  EXPECT_STREQ(round_trip(r).phase(), "reverted");
  r.reverted = false;
  r.error = v1::ErrorCode::invalid_argument;
  r.error_message = "no";
  EXPECT_STREQ(round_trip(r).phase(), "failed");
}

TEST(Wire, ApiRequestRefusesBadAmountsAndAcceptsQueries) {
  flatbuffers::FlatBufferBuilder fbb;
  auto dep = v1::CreateAccountDepositDirect(fbb, "acct-1", -5);
  fbb.Finish(v1::CreateApiRequest(fbb, 1, v1::ApiRequestBody::AccountDeposit, dep.Union()), v1::ApiRequestIdentifier());
  EXPECT_NE(decode_api_request(span_of(fbb)).error().message().find("positive"), std::string::npos);
  fbb.Clear();
  auto bid =
      v1::CreateBidSubmitDirect(fbb, "acct-1", "11111111-2222-4333-8444-555555555555", Resource::cpu, 500, 600, 40);
  fbb.Finish(v1::CreateApiRequest(fbb, 2, v1::ApiRequestBody::BidSubmit, bid.Union()), v1::ApiRequestIdentifier());
  EXPECT_FALSE(decode_api_request(span_of(fbb)));  // min_quantity above quantity
  fbb.Clear();
  fbb.Finish(v1::CreateApiRequest(fbb, 3, v1::ApiRequestBody::HostsQuery, v1::CreateHostsQuery(fbb).Union()),
             v1::ApiRequestIdentifier());
  EXPECT_TRUE(decode_api_request(span_of(fbb)));
}

TEST(Keys, GeneratedPairLoadsAndLooseSecretIsRefusedByName) {
  auto dir = std::filesystem::temp_directory_path() / ("morph-keys-" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  auto kp = generate_keypair();
  ASSERT_TRUE(kp);
  ASSERT_TRUE(write_keypair(dir, "host-a", *kp));
  struct stat st {};
  ASSERT_EQ(::stat((dir / "host-a.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto loaded = load_keypair(dir / "host-a.key");
  ASSERT_TRUE(loaded) << loaded.error().describe();
  EXPECT_EQ(loaded->public_z85, kp->public_z85);
  EXPECT_EQ(*load_public_key(dir / "host-a.pub"), kp->public_z85);
  EXPECT_FALSE(write_keypair(dir, "host-a", *kp)) << "must not overwrite";
  ::chmod((dir / "host-a.key").c_str(), 0640);
  auto refused = load_keypair(dir / "host-a.key");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code(), Errc::permission_denied);
  EXPECT_NE(refused.error().message().find((dir / "host-a.key").string()), std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST(Keys, AllowListParsesRolesAndRejectsBadLines) {
  auto a = *generate_keypair(), t = *generate_keypair();
  auto al = AllowList::parse(
      "# comment\nagent host-a " + a.public_z85 + "\n\ntenant alice " + t.public_z85 + " acct-alice\n", "allow");
  ASSERT_TRUE(al) << al.error().describe();
  EXPECT_EQ(al->size(), 2u);
  EXPECT_EQ(al->find_by_key(t.public_z85)->account, "acct-alice");
  EXPECT_EQ(al->find(Role::agent, "host-a")->public_z85, a.public_z85);
  auto bad = AllowList::parse("agent host-a " + a.public_z85 + "\nwizard bob " + t.public_z85 + "\n", "allow");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find("allow:2"), std::string::npos) << bad.error().message();
  EXPECT_FALSE(AllowList::parse("tenant bob " + t.public_z85 + "\n", "allow"));  // no account
  EXPECT_FALSE(AllowList::parse("agent a " + a.public_z85 + "\nagent b " + a.public_z85 + "\n", "allow"));  // dup key
  EXPECT_FALSE(AllowList::parse("agent a notakey\n", "allow"));
}

TEST(BadMessages, CountsEveryMessageButWarnsOncePerPeerPerMinute) {
  BadMessageCounters c;
  const uint64_t t0 = 1'000'000'000'000ULL;
  for (int i = 0; i < 100; ++i) c.record("agent:host-a", "junk", t0 + uint64_t(i) * 100'000'000ULL);  // 10 s
  c.record("agent:host-b", "junk", t0);
  EXPECT_EQ(c.count("agent:host-a"), 100u);
  EXPECT_EQ(c.total(), 101u);
  EXPECT_EQ(c.warnings_logged(), 2u);
  c.record("agent:host-a", "junk", t0 + 61'000'000'000ULL);
  EXPECT_EQ(c.warnings_logged(), 3u);
}

}  // namespace
}  // namespace morph::msg
