// MigrateCommand and MigrateResult on the wire: what the encoders produce decodes to the same values, and
// the decoders refuse what is out of range, naming it.
#include <gtest/gtest.h>

#include "common/msg/migrate.h"
#include "common/msg/wire.h"

namespace morph::msg {
namespace {

constexpr const char* kUuid = "11111111-2222-4333-8444-555555555555";

MigrateOrder order() {
  MigrateOrder o;
  o.command_id = 5;
  o.vm_uuid = kUuid;
  o.destination_host = "host-b";
  o.destination_uri = "qemu+unix:///system?socket=/var/lib/morph-testbed/p/hosts/p-h2/sock/libvirt-sock";
  o.transport_uri = "unix:///var/lib/morph-testbed/p/migrate/vm.sock";
  o.max_downtime_ms = 300;
  o.bandwidth_mib_s = 100;
  o.timeout_ms = 60000;
  o.auto_converge = true;
  o.copy_storage = true;
  o.issued_ns = 7;
  return o;
}

Result<const v1::MigrateCommand*> decode(const MigrateOrder& o, flatbuffers::FlatBufferBuilder& fbb) {
  fbb.Clear();
  encode_migrate_command(fbb, o);
  return decode_migrate_command(span_of(fbb));
}

std::string refusal(const MigrateOrder& o) {
  flatbuffers::FlatBufferBuilder fbb;
  auto c = decode(o, fbb);
  return c ? "" : c.error().what();
}

TEST(WireMigrate, CommandRoundTripsEveryField) {
  flatbuffers::FlatBufferBuilder fbb;
  auto c = decode(order(), fbb);
  ASSERT_TRUE(c) << c.error().describe();
  auto b = to_migrate_order(**c);
  auto o = order();
  EXPECT_EQ(b.command_id, o.command_id);
  EXPECT_EQ(b.vm_uuid, o.vm_uuid);
  EXPECT_EQ(b.destination_host, o.destination_host);
  EXPECT_EQ(b.destination_uri, o.destination_uri);
  EXPECT_EQ(b.transport_uri, o.transport_uri);
  EXPECT_EQ(b.max_downtime_ms, 300u);
  EXPECT_EQ(b.bandwidth_mib_s, 100u);
  EXPECT_EQ(b.timeout_ms, 60000u);
  EXPECT_TRUE(b.auto_converge);
  EXPECT_FALSE(b.postcopy);
  EXPECT_TRUE(b.copy_storage);
  EXPECT_FALSE(b.cancel);
  EXPECT_EQ(b.issued_ns, 7u);
}

TEST(WireMigrate, CommandRangeChecksNameTheField) {
  auto o = order();
  o.vm_uuid = "not a uuid";
  EXPECT_NE(refusal(o).find("vm uuid"), std::string::npos);
  o = order();
  o.destination_uri = "";
  EXPECT_NE(refusal(o).find("destination_uri"), std::string::npos);
  o.destination_uri = "qemu:///system with blanks";
  EXPECT_NE(refusal(o).find("destination_uri"), std::string::npos);
  o.destination_uri = "qemu+tcp://h/" + std::string(1100, 'x');
  EXPECT_NE(refusal(o).find("destination_uri"), std::string::npos);
  o = order();
  o.transport_uri = "http://h:80";
  EXPECT_NE(refusal(o).find("transport_uri"), std::string::npos);
  o = order();
  o.max_downtime_ms = 60001;
  EXPECT_NE(refusal(o).find("max_downtime_ms"), std::string::npos);
  o = order();
  o.bandwidth_mib_s = (1u << 20) + 1;
  EXPECT_NE(refusal(o).find("bandwidth"), std::string::npos);
  o = order();
  o.timeout_ms = 86'400'001;
  EXPECT_NE(refusal(o).find("timeout"), std::string::npos);
  o = order();
  o.destination_host = "bad host/name";
  EXPECT_FALSE(refusal(o).empty());
}

TEST(WireMigrate, ACancelNeedsOnlyTheVm) {
  MigrateOrder o;
  o.command_id = 6;
  o.vm_uuid = kUuid;
  o.cancel = true;
  flatbuffers::FlatBufferBuilder fbb;
  auto c = decode(o, fbb);
  ASSERT_TRUE(c) << c.error().describe();
  EXPECT_TRUE(to_migrate_order(**c).cancel);
}

TEST(WireMigrate, ResultRoundTripsAndAnErrorGoesWithFailureOnly) {
  MigrateOutcome r;
  r.command_id = 5;
  r.vm_uuid = kUuid;
  r.destination_host = "host-b";
  r.state = MigrationState::completed;
  r.downtime_ms = 31;
  r.total_ms = 812;
  r.bytes = 104857600;
  r.iterations = 3;
  flatbuffers::FlatBufferBuilder fbb;
  encode_migrate_result(fbb, "host-a", r);
  auto d = decode_migrate_result(span_of(fbb));
  ASSERT_TRUE(d) << d.error().describe();
  EXPECT_EQ(std::string(sv((*d)->host())), "host-a");
  auto b = to_migrate_outcome(**d);
  EXPECT_EQ(b.state, MigrationState::completed);
  EXPECT_TRUE(b.final());
  EXPECT_EQ(b.downtime_ms, 31u);
  EXPECT_EQ(b.total_ms, 812u);
  EXPECT_EQ(b.bytes, 104857600u);
  EXPECT_EQ(b.iterations, 3u);
  EXPECT_STREQ(migration_state_name(b.state), "completed");

  r.error = v1::ErrorCode::conflict;  // an error on a completed migration
  r.error_message = "x";
  fbb.Clear();
  encode_migrate_result(fbb, "host-a", r);
  EXPECT_FALSE(decode_migrate_result(span_of(fbb)));
  r.state = MigrationState::failed;  // failed with its error: fine
  fbb.Clear();
  encode_migrate_result(fbb, "host-a", r);
  EXPECT_TRUE(decode_migrate_result(span_of(fbb)));
  r.error = v1::ErrorCode::ok;  // failed without one
  fbb.Clear();
  encode_migrate_result(fbb, "host-a", r);
  EXPECT_FALSE(decode_migrate_result(span_of(fbb)));
  r.state = MigrationState::running;
  r.total_ms = 86'400'001;
  fbb.Clear();
  encode_migrate_result(fbb, "host-a", r);
  auto late = decode_migrate_result(span_of(fbb));
  ASSERT_FALSE(late);
  EXPECT_NE(late.error().what().find("24 h"), std::string::npos);
}

TEST(WireMigrate, RefusesOtherMessagesAndGarbage) {
  flatbuffers::FlatBufferBuilder fbb;
  encode_migrate_command(fbb, order());
  EXPECT_FALSE(decode_migrate_result(span_of(fbb)));  // wrong file_identifier
  std::vector<uint8_t> junk(64, 0xab);
  EXPECT_FALSE(decode_migrate_command(junk));
  EXPECT_FALSE(decode_migrate_result(junk));
}

}  // namespace
}  // namespace morph::msg
