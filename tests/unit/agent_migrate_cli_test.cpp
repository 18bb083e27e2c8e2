// `morph-agent migrate`'s arguments and its JSON, without libvirt: what each flag becomes in the request,
// the refusals naming the bad argument, and the one object --json prints.
#include <gtest/gtest.h>

#include <functional>
#include <nlohmann/json.hpp>

#include "hostagent/cli/migrate_command.h"

namespace morph::agent::cli {
namespace {

MigrateArgs args() {
  MigrateArgs a;
  a.vm = "vm1";
  a.to = "qemu+ssh://h2/system";
  return a;
}

TEST(MigrateCli, DefaultsAreALivePrecopyWithin60sAnd300msDowntime) {
  auto r = parse_migrate_args(args());
  ASSERT_TRUE(r.ok()) << r.error().what();
  EXPECT_EQ(r->vm, "vm1");
  EXPECT_EQ(r->destination_uri, "qemu+ssh://h2/system");
  EXPECT_EQ(r->options.timeout, std::chrono::seconds(60));
  EXPECT_EQ(r->options.max_downtime, std::chrono::milliseconds(300));
  EXPECT_EQ(r->options.bandwidth_mib_s, 0u);
  EXPECT_FALSE(r->options.postcopy || r->options.auto_converge || r->options.copy_storage || r->options.unsafe ||
               r->options.tunnelled);
  EXPECT_TRUE(r->options.transport_uri.empty());
}

TEST(MigrateCli, EveryFlagReachesTheRequest) {
  auto a = args();
  a.timeout = "2m";
  a.downtime = "50ms";
  a.bandwidth_mib_s = 200;
  a.transport = "tcp://10.0.0.2:49152";
  a.auto_converge = a.postcopy = a.copy_storage = a.unsafe = true;
  auto r = parse_migrate_args(a);
  ASSERT_TRUE(r.ok()) << r.error().what();
  EXPECT_EQ(r->options.timeout, std::chrono::minutes(2));
  EXPECT_EQ(r->options.max_downtime, std::chrono::milliseconds(50));
  EXPECT_EQ(r->options.bandwidth_mib_s, 200u);
  EXPECT_EQ(r->options.transport_uri, "tcp://10.0.0.2:49152");
  EXPECT_TRUE(r->options.auto_converge && r->options.postcopy && r->options.copy_storage && r->options.unsafe);
}

TEST(MigrateCli, BadArgumentsAreRefusedByName) {
  const std::vector<std::pair<std::function<void(MigrateArgs&)>, const char*>> cases = {
      {[](MigrateArgs& a) { a.to = "h2"; }, "--to 'h2' is not a libvirt URI"},
      {[](MigrateArgs& a) { a.timeout = "soon"; }, "--timeout"},
      {[](MigrateArgs& a) { a.timeout = "500ms"; }, "timeout 500 ms"},
      {[](MigrateArgs& a) { a.downtime = "2m"; }, "max downtime 120000 ms"},
      {[](MigrateArgs& a) { a.transport = "ftp://x"; }, "transport URI 'ftp://x'"},
      {[](MigrateArgs& a) { a.postcopy = a.tunnelled = true; }, "post-copy"},
  };
  for (const auto& [spoil, says] : cases) {
    auto a = args();
    spoil(a);
    auto r = parse_migrate_args(a);
    ASSERT_FALSE(r.ok()) << says;
    EXPECT_EQ(r.error().code(), Errc::invalid_argument);
    EXPECT_NE(r.error().what().find(says), std::string::npos) << r.error().what();
  }
}

TEST(MigrateCli, JsonIsOneObjectWithTheFigures) {
  migration::MigrationReport r{"uuid-1", "vm1", "qemu+ssh://h2/system", 31, 812, 104857600, 3, false, ""};
  auto j = nlohmann::json::parse(migration_report_json(r));
  EXPECT_EQ(j["downtime_ms"], 31);
  EXPECT_EQ(j["total_ms"], 812);
  EXPECT_EQ(j["bytes"], 104857600);
  EXPECT_EQ(j["uuid"], "uuid-1");
  EXPECT_EQ(j["vm"], "vm1");
  EXPECT_FALSE(j.contains("warning"));
  r.warning = "downtime unknown";
  EXPECT_EQ(nlohmann::json::parse(migration_report_json(r))["warning"], "downtime unknown");
}

}  // namespace
}  // namespace morph::agent::cli
