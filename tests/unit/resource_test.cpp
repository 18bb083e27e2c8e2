// common/resource.h: names and units of every resource, the market's subset, and the checked conversions
// to and from the wire's v1::Resource (every value of the schema's enum, and values outside it).
#include "common/resource.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "types_generated.h"

namespace morph {
namespace {

using ::testing::HasSubstr;

TEST(Resource, EveryResourceHasAUniqueNameThatParsesBack) {
  std::set<std::string> names;
  for (size_t i = 0; i < kResources.size(); ++i) {
    const Resource r = kResources[i];
    EXPECT_EQ(static_cast<size_t>(r), i) << "kResources lists the enum in order";
    EXPECT_TRUE(names.insert(resource_name(r)).second) << resource_name(r);
    EXPECT_STRNE(resource_unit(r), "") << resource_name(r);
    auto back = parse_resource(resource_name(r));
    ASSERT_TRUE(back.has_value()) << resource_name(r);
    EXPECT_EQ(*back, r);
  }
  EXPECT_EQ(names.size(), kResourceCount);
}

TEST(Resource, ParsesTheAgentsOlderSpellingsAndNothingElse) {
  EXPECT_EQ(parse_resource("cpu_millicores"), Resource::cpu);
  EXPECT_EQ(parse_resource("memory_mib"), Resource::memory);
  EXPECT_EQ(parse_resource("mem"), Resource::memory);
  EXPECT_EQ(parse_resource("net_out"), Resource::net_out_kbps);
  EXPECT_EQ(parse_resource("net_in"), Resource::net_in_kbps);
  for (const char* bad : {"", "CPU", "migrate", "cpu ", "disk", "bogus"})
    EXPECT_EQ(parse_resource(bad), std::nullopt) << bad;
}

TEST(Resource, TheMarketSellsAllButPinningAndWeight) {
  EXPECT_EQ(resource_names(kMarketResources),
            "cpu, memory, disk_iops, disk_bps, net_out_kbps, net_in_kbps, storage_tier");
  for (size_t i = 0; i < kMarketResources.size(); ++i)
    EXPECT_EQ(static_cast<size_t>(kMarketResources[i]), i) << "a market resource's value indexes its books";
  for (Resource r : kResources) {
    const bool listed = std::find(kMarketResources.begin(), kMarketResources.end(), r) != kMarketResources.end();
    EXPECT_EQ(traded(r), listed) << resource_name(r);
  }
  EXPECT_FALSE(traded(Resource::vcpu_pin));
  EXPECT_FALSE(traded(Resource::cpu_shares));
  EXPECT_EQ(resource_names(kResources, "|"),
            "cpu|memory|disk_iops|disk_bps|net_out_kbps|net_in_kbps|storage_tier|vcpu_pin|cpu_shares");
}

TEST(Resource, UnitsOfTheMarketResources) {
  EXPECT_STREQ(resource_unit(Resource::cpu), "millicore");
  EXPECT_STREQ(resource_unit(Resource::memory), "MiB");
  EXPECT_STREQ(resource_unit(Resource::disk_iops), "IOPS");
  EXPECT_STREQ(resource_unit(Resource::disk_bps), "byte/s");
  EXPECT_STREQ(resource_unit(Resource::net_out_kbps), "kbit/s out");
  EXPECT_STREQ(resource_unit(Resource::net_in_kbps), "kbit/s in");
  EXPECT_STREQ(resource_unit(Resource::storage_tier), "storage-tier slot");
}

TEST(Resource, EveryResourceButTheWeightRoundTripsThroughTheWire) {
  for (Resource r : kResources) {
    auto w = to_wire(r);
    if (r == Resource::cpu_shares) {
      ASSERT_FALSE(w.ok());
      EXPECT_EQ(w.error().code(), Errc::invalid_argument);
      EXPECT_THAT(w.error().message(), HasSubstr("cpu_shares"));
      continue;
    }
    ASSERT_TRUE(w.ok()) << resource_name(r);
    EXPECT_STREQ(v1::EnumNameResource(*w), resource_name(r)) << "the names are the schema's";
    auto back = from_wire(*w);
    ASSERT_TRUE(back.ok()) << back.error().what();
    EXPECT_EQ(*back, r);
  }
}

TEST(Resource, EveryWireValueConvertsOrIsRefusedWithAReason) {
  for (v1::Resource w : v1::EnumValuesResource()) {
    auto r = from_wire(w);
    if (w == v1::Resource::migrate) {
      ASSERT_FALSE(r.ok());
      EXPECT_EQ(r.error().code(), Errc::unavailable);
      EXPECT_THAT(r.error().message(), HasSubstr("migrate"));
      EXPECT_EQ(wire_resource_name(w), "migrate");
      continue;
    }
    ASSERT_TRUE(r.ok()) << v1::EnumNameResource(w) << ": " << r.error().what();
    EXPECT_EQ(to_wire(*r).value(), w);
    EXPECT_EQ(wire_resource_name(w), v1::EnumNameResource(w));
  }
}

TEST(Resource, AWireValueOutsideTheSchemaIsAnErrorNotACast) {
  for (unsigned raw : {9u, 10u, 42u, 255u}) {
    const auto w = static_cast<v1::Resource>(raw);  // what a peer could put in a byte
    auto r = from_wire(w);
    ASSERT_FALSE(r.ok()) << raw;
    EXPECT_EQ(r.error().code(), Errc::invalid_argument);
    EXPECT_THAT(r.error().message(), HasSubstr(std::to_string(raw)));
    EXPECT_EQ(wire_resource_name(w), "unknown(" + std::to_string(raw) + ")");
  }
}

}  // namespace
}  // namespace morph
