// SubscriptionTable: the events endpoint's limits (prefix length, per connection, per principal), the
// topics anyone reads, and connections told apart across fd reuse when the monitor's events and the
// subscriptions are read in either order.
#include "controller/api/subscriptions.h"

#include <gtest/gtest.h>

namespace morph::controller {
namespace {

using V = SubscriptionTable::Verdict;

int tags[16];  // addresses stand for connections' metadata
SubscriptionPeer peer(int fd, int tag, std::string principal = "tenant:alice") {
  return {fd, &tags[tag], std::move(principal), nullptr};
}

TEST(Subscriptions, PrefixLongerThanTheLongestTopicIsRefused) {
  SubscriptionTable t;
  t.accepted(7);
  EXPECT_EQ(t.subscribe(peer(7, 0), std::string(261, 'k')), V::accepted);
  EXPECT_EQ(t.subscribe(peer(7, 0), std::string(262, 'k')), V::too_long);
  // The connection is being dropped: what it sent after is ignored, not refused again.
  EXPECT_EQ(t.subscribe(peer(7, 0), "kpi."), V::dropped_already);
  t.accepted(8);
  EXPECT_EQ(t.subscribe(peer(8, 1), std::string(7 << 20, 'k')), V::too_long);
  EXPECT_NE(t.describe(V::too_long, std::string(262, 'k')).find("262 bytes is longer than 261"), std::string::npos);
  EXPECT_EQ(t.subscriptions(), 1u);
}

TEST(Subscriptions, PerConnectionAndPerPrincipalLimits) {
  SubscriptionTable t({261, 3, 5});
  t.accepted(7);
  t.accepted(8);
  t.accepted(9);
  for (const char* p : {"kpi.", "bid.acme", "price."}) EXPECT_EQ(t.subscribe(peer(7, 0), p), V::accepted);
  EXPECT_EQ(t.subscribe(peer(7, 0), "price."), V::duplicate);  // counted once
  EXPECT_EQ(t.subscribe(peer(7, 0), "alloc."), V::too_many_for_connection);
  EXPECT_EQ(t.subscribe(peer(7, 0), "host."), V::dropped_already);
  // A second connection of the same principal: two more, then the principal's limit.
  EXPECT_EQ(t.subscribe(peer(8, 1), "shift."), V::accepted);
  EXPECT_EQ(t.subscribe(peer(8, 1), "host."), V::accepted);
  t.accepted(10);
  EXPECT_EQ(t.subscribe(peer(10, 3), "alloc."), V::too_many_for_principal);
  EXPECT_EQ(t.held_by("tenant:alice"), 5u);
  // Another principal is not affected.
  EXPECT_EQ(t.subscribe(peer(9, 2, "tenant:bob"), "alloc."), V::accepted);
  // An unsubscribe frees a place; a disconnect frees the connection's.
  EXPECT_TRUE(t.unsubscribe(peer(8, 1), "host."));
  EXPECT_FALSE(t.unsubscribe(peer(8, 1), "host."));
  EXPECT_EQ(t.subscribe(peer(8, 1), "alloc."), V::accepted);
  t.disconnected(7);
  EXPECT_EQ(t.held_by("tenant:alice"), 2u);
  EXPECT_EQ(t.subscriptions(), 3u);
  t.disconnected(8);
  t.disconnected(9);
  t.disconnected(10);
  EXPECT_EQ(t.subscriptions(), 0u);
  EXPECT_EQ(t.held_by("tenant:alice"), 0u);
  EXPECT_EQ(t.connections(), 0u);
}

TEST(Subscriptions, WantedMatchesPrefixesAndForgetsThemWhenTheirHoldersLeave) {
  SubscriptionTable t;
  t.accepted(7);
  t.accepted(8);
  EXPECT_FALSE(t.wanted("kpi.host-a"));
  EXPECT_EQ(t.subscribe(peer(7, 0), "kpi.host-a"), V::accepted);
  EXPECT_EQ(t.subscribe(peer(8, 1), "kpi."), V::accepted);
  EXPECT_TRUE(t.wanted("kpi.host-a"));
  EXPECT_TRUE(t.wanted("kpi.host-b"));
  EXPECT_FALSE(t.wanted("kpi"));
  EXPECT_FALSE(t.wanted("price.host-a"));
  t.disconnected(8);
  EXPECT_TRUE(t.wanted("kpi.host-a"));
  EXPECT_FALSE(t.wanted("kpi.host-b"));
  EXPECT_EQ(t.subscribe(peer(7, 0), ""), V::accepted);  // everything
  EXPECT_TRUE(t.wanted("price.host-a"));
  t.disconnected(7);
  EXPECT_FALSE(t.wanted("kpi.host-a"));
}

// The monitor's events and the subscriptions come on two channels. A connection's subscription may be read
// before its accept event, and a new connection on a reused fd may subscribe before the old one's
// disconnect event is read: each disconnect still ends the right connection.
TEST(Subscriptions, ConnectionsOnAReusedFdAreToldApartInEitherOrder) {
  SubscriptionTable t;
  t.accepted(7);
  EXPECT_EQ(t.subscribe(peer(7, 0), "kpi."), V::accepted);  // connection A
  // A ends and B is accepted on fd 7 and subscribes, all before the monitor's events are read.
  EXPECT_EQ(t.subscribe(peer(7, 1), "price."), V::accepted);  // connection B
  EXPECT_EQ(t.connections(), 2u);
  t.disconnected(7);  // A's
  t.accepted(7);      // B's, matched to B rather than starting a third
  EXPECT_EQ(t.connections(), 1u);
  EXPECT_FALSE(t.wanted("kpi.h"));
  EXPECT_TRUE(t.wanted("price.h"));
  // A connection that never subscribes still takes its place in the order.
  t.disconnected(7);  // B's
  t.accepted(7);      // C, silent
  t.disconnected(7);
  t.accepted(7);  // D
  EXPECT_EQ(t.subscribe(peer(7, 3), "alloc."), V::accepted);
  EXPECT_TRUE(t.wanted("alloc.h"));
  EXPECT_EQ(t.connections(), 1u);
}

// wanted() looks up each distinct prefix length once: tens of thousands of subscriptions of a few lengths
// cost a few lookups per topic.
TEST(Subscriptions, ManySubscriptionsOfFewLengths) {
  SubscriptionTable t({261, 100000, 100000});
  t.accepted(7);
  for (int i = 0; i < 20000; ++i) ASSERT_EQ(t.subscribe(peer(7, 0), "x" + std::to_string(100000 + i)), V::accepted);
  EXPECT_EQ(t.subscriptions(), 20000u);
  EXPECT_FALSE(t.wanted("kpi.host-a"));
  EXPECT_TRUE(t.wanted("x100042-and-more"));
  t.disconnected(7);
  EXPECT_EQ(t.subscriptions(), 0u);
  EXPECT_FALSE(t.wanted("x100042"));
}

}  // namespace
}  // namespace morph::controller
