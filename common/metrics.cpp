#include "common/metrics.h"

#include <httplib.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <stdexcept>
#include <thread>

#include "common/config.h"
#include "common/enum_names.h"
#include "common/escape.h"

namespace morph::metrics {

namespace {

bool valid_metric_name(std::string_view n) {
  if (n.empty()) return false;
  auto first = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':'; };
  if (!first(n[0])) return false;
  return std::all_of(n.begin(), n.end(), [&](char c) { return first(c) || (c >= '0' && c <= '9'); });
}

bool valid_label_name(std::string_view n) {
  if (n.empty() || n.starts_with("__")) return false;
  auto first = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; };
  if (!first(n[0])) return false;
  return std::all_of(n.begin(), n.end(), [&](char c) { return first(c) || (c >= '0' && c <= '9'); });
}

void atomic_add(std::atomic<double>& a, double by) noexcept {
  double cur = a.load(std::memory_order_relaxed);
  while (!a.compare_exchange_weak(cur, cur + by, std::memory_order_relaxed)) {
  }
}

constexpr auto kKindNames = enum_names<Kind::histogram>({"counter", "gauge", "histogram"});

const char* kind_name(Kind k) {
  return kKindNames.name(k, "untyped");
}

}  // namespace

// ---- text format ----

std::string escape_label_value(std::string_view v) {
  return escaped(v, {{'\\', "\\\\"}, {'"', "\\\""}, {'\n', "\\n"}});
}

std::string escape_help(std::string_view v) {
  return escaped(v, {{'\\', "\\\\"}, {'\n', "\\n"}});
}

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[32];
  auto [p, ec] = std::to_chars(buf, buf + sizeof buf, v);
  if (ec != std::errc()) return "NaN";
  return std::string(buf, p);
}

// ---- metric types ----

void Counter::inc(double by) noexcept {
  if (by > 0) atomic_add(value_, by);
}

void Gauge::inc(double by) noexcept {
  atomic_add(value_, by);
}

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)) {
  if (!std::is_sorted(bounds_.begin(), bounds_.end()) ||
      std::adjacent_find(bounds_.begin(), bounds_.end()) != bounds_.end() ||
      std::any_of(bounds_.begin(), bounds_.end(), [](double b) { return std::isnan(b) || std::isinf(b); })) {
    throw std::logic_error("histogram bounds must be finite and strictly increasing");
  }
  counts_ = std::make_unique<std::atomic<uint64_t>[]>(bounds_.size() + 1);
}

void Histogram::observe(double v) noexcept {
  // First bucket whose bound is >= v (le is inclusive); past the end is +Inf.
  size_t i = static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin());
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  atomic_add(sum_, v);
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot s;
  s.bounds = bounds_;
  uint64_t total = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    total += counts_[i].load(std::memory_order_relaxed);
    s.cumulative.push_back(total);
  }
  s.count = total;
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

std::vector<double> exponential_buckets(double start, double factor, size_t count) {
  if (start <= 0 || factor <= 1) throw std::logic_error("exponential_buckets needs start > 0 and factor > 1");
  std::vector<double> b;
  double v = start;
  for (size_t i = 0; i < count; ++i, v *= factor) b.push_back(v);
  return b;
}

std::vector<double> default_buckets() {
  return {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

// ---- families ----

FamilyBase::FamilyBase(std::string name, std::string help, Kind kind, std::vector<std::string> labels)
    : name_(std::move(name)), help_(std::move(help)), kind_(kind), labels_(std::move(labels)) {
  if (!valid_metric_name(name_)) throw std::logic_error("metric name '" + name_ + "' is not [a-zA-Z_:][a-zA-Z0-9_:]*");
  for (size_t i = 0; i < labels_.size(); ++i) {
    if (!valid_label_name(labels_[i]) || (kind_ == Kind::histogram && labels_[i] == "le")) {
      throw std::logic_error("metric " + name_ + ": label name '" + labels_[i] + "' is not allowed");
    }
    if (std::find(labels_.begin(), labels_.begin() + static_cast<std::ptrdiff_t>(i), labels_[i]) !=
        labels_.begin() + static_cast<std::ptrdiff_t>(i)) {
      throw std::logic_error("metric " + name_ + ": label '" + labels_[i] + "' named twice");
    }
  }
}

void FamilyBase::check_arity(const LabelValues& values) const {
  if (values.size() != labels_.size()) {
    throw std::logic_error("metric " + name_ + ": " + std::to_string(labels_.size()) +
                           " label value(s) expected, got " + std::to_string(values.size()));
  }
}

std::string FamilyBase::label_text(const LabelValues& values, const std::string& extra_name,
                                   const std::string& extra_value) const {
  if (labels_.empty() && extra_name.empty()) return {};
  std::string out = "{";
  for (size_t i = 0; i < labels_.size(); ++i) {
    if (i) out += ',';
    out += labels_[i] + "=\"" + escape_label_value(values[i]) + "\"";
  }
  if (!extra_name.empty()) {
    if (!labels_.empty()) out += ',';
    out += extra_name + "=\"" + escape_label_value(extra_value) + "\"";
  }
  return out + "}";
}

template <class T>
std::shared_ptr<T> Family<T>::with(const LabelValues& values) {
  check_arity(values);
  std::lock_guard lock(mu_);
  auto& slot = children_[values];
  if (!slot) {
    if constexpr (std::is_same_v<T, Histogram>)
      slot = std::make_shared<Histogram>(bounds_);
    else
      slot = std::make_shared<T>();
  }
  return slot;
}

template <class T>
bool Family<T>::remove(const LabelValues& values) {
  std::lock_guard lock(mu_);
  return children_.erase(values) > 0;
}

template <class T>
size_t Family<T>::size() const {
  std::lock_guard lock(mu_);
  return children_.size();
}

template <class T>
void Family<T>::render(std::string& out) const {
  out += "# HELP " + name() + " " + escape_help(help()) + "\n";
  out += "# TYPE " + name() + " " + kind_name(kind()) + "\n";
  std::lock_guard lock(mu_);
  for (const auto& [values, child] : children_) {
    if constexpr (std::is_same_v<T, Histogram>) {
      auto s = child->snapshot();
      for (size_t i = 0; i < s.bounds.size(); ++i) {
        out += name() + "_bucket" + label_text(values, "le", format_value(s.bounds[i])) + " " +
               std::to_string(s.cumulative[i]) + "\n";
      }
      out += name() + "_bucket" + label_text(values, "le", "+Inf") + " " + std::to_string(s.cumulative.back()) + "\n";
      out += name() + "_sum" + label_text(values) + " " + format_value(s.sum) + "\n";
      out += name() + "_count" + label_text(values) + " " + std::to_string(s.count) + "\n";
    } else {
      out += name() + label_text(values) + " " + format_value(child->value()) + "\n";
    }
  }
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

// ---- registry ----

template <class T>
Family<T>& Registry::family(const std::string& name, const std::string& help, Kind kind,
                            std::vector<std::string> labels, std::vector<double> bounds) {
  std::lock_guard lock(mu_);
  auto it = families_.find(name);
  if (it != families_.end()) {
    auto* f = dynamic_cast<Family<T>*>(it->second.get());
    if (!f || f->kind() != kind || f->help() != help || f->label_names() != labels ||
        (kind == Kind::histogram && f->bounds_ != bounds)) {
      throw std::logic_error("metric " + name + " registered twice with different type, help, labels or buckets");
    }
    return *f;
  }
  if (kind == Kind::histogram && bounds.empty()) throw std::logic_error("histogram " + name + " without buckets");
  auto* f = new Family<T>(name, help, kind, std::move(labels), std::move(bounds));
  families_.emplace(name, std::unique_ptr<FamilyBase>(f));
  return *f;
}

Family<Counter>& Registry::counter(const std::string& name, const std::string& help, std::vector<std::string> labels) {
  return family<Counter>(name, help, Kind::counter, std::move(labels), {});
}

Family<Gauge>& Registry::gauge(const std::string& name, const std::string& help, std::vector<std::string> labels) {
  return family<Gauge>(name, help, Kind::gauge, std::move(labels), {});
}

Family<Histogram>& Registry::histogram(const std::string& name, const std::string& help,
                                       std::vector<std::string> labels, std::vector<double> bounds) {
  Histogram check(bounds);  // validates the bounds before anything is registered
  (void)check;
  return family<Histogram>(name, help, Kind::histogram, std::move(labels), std::move(bounds));
}

void Registry::on_collect(std::function<void()> fn) {
  std::lock_guard lock(mu_);
  collectors_.push_back(std::move(fn));
}

std::string Registry::render() const {
  std::vector<std::function<void()>> collectors;
  {
    std::lock_guard lock(mu_);
    collectors = collectors_;
  }
  for (const auto& c : collectors) c();
  std::string out;
  std::lock_guard lock(mu_);
  for (const auto& [name, f] : families_) f->render(out);
  return out;
}

// ---- HTTP server ----

struct MetricsServer::Impl {
  httplib::Server server;
  std::thread thread;
};

Result<std::unique_ptr<MetricsServer>> MetricsServer::start(const Registry& registry, const std::string& listen,
                                                            HealthCheck health) {
  auto addr = config::parse_listen(listen);
  if (!addr) return std::move(addr).error().with_context("metrics server");
  std::unique_ptr<MetricsServer> s(new MetricsServer());
  s->impl_ = std::make_unique<Impl>();
  auto& svr = s->impl_->server;
  // Scrapes are rare and small: two workers, and a short keep-alive so stop() never waits long.
  svr.new_task_queue = [] { return new httplib::ThreadPool(2); };
  svr.set_keep_alive_timeout(1);
  // httplib's default adds SO_REUSEPORT, which would let a second daemon bind the same port and silently
  // take half the scrapes; SO_REUSEADDR alone still allows a quick restart.
  svr.set_socket_options([](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  svr.set_read_timeout(5);
  svr.set_write_timeout(5);
  const Registry* reg = &registry;
  svr.Get("/metrics",
          [reg](const httplib::Request&, httplib::Response& res) { res.set_content(reg->render(), kContentType); });
  svr.Get("/healthz", [health](const httplib::Request&, httplib::Response& res) {
    Status st = health ? health() : Status{};
    if (st) {
      res.set_content("ok\n", "text/plain; charset=utf-8");
    } else {
      res.status = 503;
      res.set_content(st.error().what() + "\n", "text/plain; charset=utf-8");
    }
  });

  std::string host = addr->host.empty() ? "0.0.0.0" : addr->host;
  int port = addr->port;
  if (port == 0) {
    port = svr.bind_to_any_port(host);
    if (port < 0) return Error::from_errno("metrics server: cannot bind " + host + " on any port");
  } else if (!svr.bind_to_port(host, port)) {
    return Error::from_errno("metrics server: cannot bind " + listen);
  }
  s->host_ = host;
  s->port_ = static_cast<uint16_t>(port);
  s->impl_->thread = std::thread([&svr] { svr.listen_after_bind(); });
  // stop() before the accept loop has started would be lost; wait until it runs.
  for (int i = 0; i < 5000 && !svr.is_running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  if (!svr.is_running()) return Error(Errc::internal, "metrics server on " + listen + " did not start");
  spdlog::info("metrics: serving /metrics and /healthz on {}", s->url());
  return s;
}

MetricsServer::~MetricsServer() {
  if (!impl_) return;
  impl_->server.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

std::string MetricsServer::url() const {
  std::string h = host_ == "0.0.0.0" ? "127.0.0.1" : host_;
  if (h.find(':') != std::string::npos) h = "[" + h + "]";
  return "http://" + h + ":" + std::to_string(port_);
}

}  // namespace morph::metrics
