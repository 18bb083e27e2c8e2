#pragma once
// Metrics of the daemons in the Prometheus text exposition format 0.0.4, and the HTTP server that
// serves them.
//
// A Registry holds families (one name, one help text, one type, fixed label names) of counters, gauges
// and histograms. Registering and looking up a labelled child takes the registry's lock; updating a child
// never does — counters, gauges and histogram buckets are atomics — so components look a child up once
// (e.g. when a VM appears) and keep the shared_ptr. remove() forgets a child (a VM that went away); a
// caller still holding it can keep updating it harmlessly, it is just no longer exposed.
//
// MetricsServer serves GET /metrics and GET /healthz on a listen address from the configuration
// (metrics.listen) with cpp-httplib, on its own threads; it stops and joins in its destructor.
//
// Names that break the format (metric name, label names, a family re-registered with another type,
// help or label set) are programming errors and throw std::logic_error.

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace morph::metrics {

enum class Kind { counter, gauge, histogram };

// Monotonic; resets only with the process.
class Counter {
 public:
  void inc(double by = 1.0) noexcept;  // by < 0 is ignored: a counter never goes down
  double value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

class Gauge {
 public:
  void set(double v) noexcept { value_.store(v, std::memory_order_relaxed); }
  void inc(double by = 1.0) noexcept;
  void dec(double by = 1.0) noexcept { inc(-by); }
  double value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// Cumulative buckets with upper bounds (le); +Inf is implicit. _count is derived from the buckets when
// rendering, so a scrape concurrent with observe() still shows +Inf == _count.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double v) noexcept;

  struct Snapshot {
    std::vector<double> bounds;
    std::vector<uint64_t> cumulative;  // one per bound, then +Inf
    double sum = 0;
    uint64_t count = 0;
  };
  Snapshot snapshot() const;

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // bounds_.size() + 1 (the last is +Inf)
  std::atomic<double> sum_{0.0};
};

// Bucket bounds: start, start*factor, ... (count bounds).
std::vector<double> exponential_buckets(double start, double factor, size_t count);
// Prometheus' client default: 0.005 .. 10 seconds.
std::vector<double> default_buckets();

class FamilyBase;
template <class T>
class Family;

using LabelValues = std::vector<std::string>;

class Registry {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Registers a family, or returns the existing one when name, help and labels match.
  Family<Counter>& counter(const std::string& name, const std::string& help, std::vector<std::string> labels = {});
  Family<Gauge>& gauge(const std::string& name, const std::string& help, std::vector<std::string> labels = {});
  Family<Histogram>& histogram(const std::string& name, const std::string& help, std::vector<std::string> labels,
                               std::vector<double> bounds = default_buckets());

  // Called (outside the registry's lock, in registration order) before each render: the place to set
  // gauges that are cheaper to read on demand than to keep current.
  void on_collect(std::function<void()> fn);

  // The whole exposition, families sorted by name and children by label values.
  std::string render() const;

 private:
  template <class T>
  Family<T>& family(const std::string& name, const std::string& help, Kind kind, std::vector<std::string> labels,
                    std::vector<double> bounds);
  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<FamilyBase>, std::less<>> families_;
  std::vector<std::function<void()>> collectors_;
};

class FamilyBase {
 public:
  virtual ~FamilyBase() = default;
  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  Kind kind() const { return kind_; }
  const std::vector<std::string>& label_names() const { return labels_; }
  // Appends this family's HELP, TYPE and sample lines.
  virtual void render(std::string& out) const = 0;

 protected:
  FamilyBase(std::string name, std::string help, Kind kind, std::vector<std::string> labels);
  void check_arity(const LabelValues& values) const;
  std::string label_text(const LabelValues& values, const std::string& extra_name = {},
                         const std::string& extra_value = {}) const;
  mutable std::mutex mu_;

 private:
  std::string name_, help_;
  Kind kind_;
  std::vector<std::string> labels_;
};

template <class T>
class Family final : public FamilyBase {
 public:
  // The child with these label values (in the order of the family's label names), created on first use.
  std::shared_ptr<T> with(const LabelValues& values);
  // Forgets a child; false when there was none.
  bool remove(const LabelValues& values);
  size_t size() const;
  void render(std::string& out) const override;

 private:
  friend class Registry;
  Family(std::string name, std::string help, Kind kind, std::vector<std::string> labels,
         std::vector<double> bounds = {})
      : FamilyBase(std::move(name), std::move(help), kind, std::move(labels)), bounds_(std::move(bounds)) {}
  std::vector<double> bounds_;
  std::map<LabelValues, std::shared_ptr<T>> children_;
};

// Text-format helpers (exposed for tests and for other exporters).
std::string escape_label_value(std::string_view v);  // \ → \\, " → \", newline → \n
std::string escape_help(std::string_view v);         // \ → \\, newline → \n
std::string format_value(double v);                  // shortest round-trip; +Inf, -Inf, NaN
inline constexpr const char* kContentType = "text/plain; version=0.0.4; charset=utf-8";

// /healthz: 200 "ok" when the check passes (or none is given), else 503 with the error.
using HealthCheck = std::function<Status()>;

class MetricsServer {
 public:
  // Binds listen ("127.0.0.1:9470", "[::1]:0", ":9470" = all interfaces; port 0 picks a free one) and
  // serves on a background thread. The registry must outlive the server.
  static Result<std::unique_ptr<MetricsServer>> start(const Registry& registry, const std::string& listen,
                                                      HealthCheck health = {});
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  const std::string& host() const { return host_; }
  uint16_t port() const { return port_; }
  // "http://host:port" as a client would reach it.
  std::string url() const;

 private:
  struct Impl;
  MetricsServer() = default;
  std::unique_ptr<Impl> impl_;
  std::string host_;
  uint16_t port_ = 0;
};

}  // namespace morph::metrics
