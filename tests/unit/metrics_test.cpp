// The Prometheus text exposition format 0.0.4 as the registry renders it.

#include "common/metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <thread>

namespace morph::metrics {
namespace {

TEST(MetricsFormat, Escaping) {
  EXPECT_EQ(escape_label_value(R"(a\b"c)"
                               "\n"
                               "d"),
            R"(a\\b\"c\nd)");
  EXPECT_EQ(escape_help("line\\one\nline \"two\""), "line\\\\one\\nline \"two\"");  // quotes stay in HELP
  EXPECT_EQ(format_value(1.0), "1");
  EXPECT_EQ(format_value(0.25), "0.25");
  EXPECT_EQ(format_value(-3.5), "-3.5");
  EXPECT_EQ(format_value(1e21), "1e+21");
  EXPECT_EQ(format_value(INFINITY), "+Inf");
  EXPECT_EQ(format_value(-INFINITY), "-Inf");
  EXPECT_EQ(format_value(NAN), "NaN");
}

TEST(MetricsFormat, FamiliesSortedWithHelpTypeAndEscapedLabels) {
  Registry r;
  auto& vms = r.gauge("morph_vm_cpu_run_seconds", "CPU time of the VM's threads.\nPer interval.", {"vm", "host"});
  vms.with({"t2", "h1"})->set(2.5);
  vms.with({"t1", "h1"})->set(1);
  vms.with({"we\"ird\\vm\n", "h1"})->set(0);
  r.counter("morph_bad_messages_total", "Messages dropped.").with({})->inc(3);
  std::string want =
      "# HELP morph_bad_messages_total Messages dropped.\n"
      "# TYPE morph_bad_messages_total counter\n"
      "morph_bad_messages_total 3\n"
      "# HELP morph_vm_cpu_run_seconds CPU time of the VM's threads.\\nPer interval.\n"
      "# TYPE morph_vm_cpu_run_seconds gauge\n"
      "morph_vm_cpu_run_seconds{vm=\"t1\",host=\"h1\"} 1\n"
      "morph_vm_cpu_run_seconds{vm=\"t2\",host=\"h1\"} 2.5\n"
      "morph_vm_cpu_run_seconds{vm=\"we\\\"ird\\\\vm\\n\",host=\"h1\"} 0\n";
  EXPECT_EQ(r.render(), want);

  // remove() stops exposing a child; one family per name even when looked up again.
  EXPECT_TRUE(vms.remove({"t2", "h1"}));
  EXPECT_FALSE(vms.remove({"t2", "h1"}));
  EXPECT_EQ(&r.gauge("morph_vm_cpu_run_seconds", "CPU time of the VM's threads.\nPer interval.", {"vm", "host"}), &vms);
  EXPECT_EQ(r.render().find("t2"), std::string::npos);
  EXPECT_EQ(vms.size(), 2u);
}

TEST(MetricsFormat, HistogramBucketsSumAndCount) {
  Registry r;
  auto h = r.histogram("morph_tick_seconds", "Clearing time.", {"phase"}, {0.1, 0.5, 1}).with({"clear"});
  for (double v : {0.05, 0.1, 0.3, 0.7, 2.0}) h->observe(v);
  std::string want =
      "# HELP morph_tick_seconds Clearing time.\n"
      "# TYPE morph_tick_seconds histogram\n"
      "morph_tick_seconds_bucket{phase=\"clear\",le=\"0.1\"} 2\n"  // le is inclusive: 0.1 counts here
      "morph_tick_seconds_bucket{phase=\"clear\",le=\"0.5\"} 3\n"
      "morph_tick_seconds_bucket{phase=\"clear\",le=\"1\"} 4\n"
      "morph_tick_seconds_bucket{phase=\"clear\",le=\"+Inf\"} 5\n"
      "morph_tick_seconds_sum{phase=\"clear\"} 3.15\n"
      "morph_tick_seconds_count{phase=\"clear\"} 5\n";
  EXPECT_EQ(r.render(), want);

  Registry r2;
  r2.histogram("lat", "L.", {}, {1}).with({})->observe(0.5);
  EXPECT_EQ(r2.render(),
            "# HELP lat L.\n# TYPE lat histogram\nlat_bucket{le=\"1\"} 1\nlat_bucket{le=\"+Inf\"} 1\n"
            "lat_sum 0.5\nlat_count 1\n");
  EXPECT_EQ(exponential_buckets(1, 2, 4), (std::vector<double>{1, 2, 4, 8}));
}

TEST(MetricsFormat, MisuseIsAProgrammingError) {
  Registry r;
  EXPECT_THROW(r.gauge("0bad", "x"), std::logic_error);
  EXPECT_THROW(r.gauge("ok", "x", {"__reserved"}), std::logic_error);
  EXPECT_THROW(r.gauge("ok2", "x", {"vm", "vm"}), std::logic_error);
  EXPECT_THROW(r.histogram("h", "x", {"le"}), std::logic_error);
  EXPECT_THROW(r.histogram("h2", "x", {}, {2, 1}), std::logic_error);
  auto& g = r.gauge("g", "x", {"vm"});
  EXPECT_THROW(r.counter("g", "x", {"vm"}), std::logic_error);
  EXPECT_THROW(r.gauge("g", "other help", {"vm"}), std::logic_error);
  EXPECT_THROW(g.with({}), std::logic_error);
  EXPECT_THROW(g.with({"a", "b"}), std::logic_error);
}

TEST(Metrics, CountersAreExactUnderConcurrentUpdates) {
  Registry r;
  auto c = r.counter("morph_events_total", "Events.").with({});
  auto h = r.histogram("morph_lat_seconds", "L.", {}, {0.5}).with({});
  c->inc(-5);  // ignored: counters never go down
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t) {
    ts.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        c->inc();
        h->observe(i % 2 ? 1.0 : 0.0);
      }
    });
  }
  // Renders concurrent with updates stay well formed: +Inf equals _count.
  for (int i = 0; i < 20; ++i) {
    auto s = h->snapshot();
    EXPECT_EQ(s.cumulative.back(), s.count);
    (void)r.render();
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(c->value(), 40000);
  auto s = h->snapshot();
  EXPECT_EQ(s.count, 40000u);
  EXPECT_EQ(s.cumulative[0], 20000u);
  EXPECT_EQ(s.sum, 20000.0);
}

TEST(Metrics, CollectorsRunBeforeEachRender) {
  Registry r;
  auto g = r.gauge("morph_hosts_up", "Hosts up.").with({});
  int n = 0;
  r.on_collect([&] { g->set(++n); });
  EXPECT_NE(r.render().find("morph_hosts_up 1\n"), std::string::npos);
  EXPECT_NE(r.render().find("morph_hosts_up 2\n"), std::string::npos);
}

}  // namespace
}  // namespace morph::metrics
