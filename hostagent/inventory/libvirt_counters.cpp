#include "hostagent/inventory/libvirt_counters.h"

#include <charconv>

namespace morph::agent {
namespace {

// Splits "net.3.rx.bytes" into prefix "net", index 3, rest "rx.bytes". False when the name is not of that
// shape (e.g. "net.count") or the index is absurd (guards against a huge resize from a bad field).
bool split_indexed(std::string_view name, std::string_view prefix, size_t& index, std::string_view& rest) {
  if (!name.starts_with(prefix) || name.size() <= prefix.size() || name[prefix.size()] != '.') return false;
  std::string_view tail = name.substr(prefix.size() + 1);
  size_t dot = tail.find('.');
  if (dot == std::string_view::npos) return false;
  auto [p, ec] = std::from_chars(tail.data(), tail.data() + dot, index);
  if (ec != std::errc() || p != tail.data() + dot || index > 4096) return false;
  rest = tail.substr(dot + 1);
  return true;
}

template <class V>
auto& at(V& v, size_t i) {
  if (v.size() <= i) v.resize(i + 1);
  return v[i];
}

}  // namespace

LibvirtCounters counters_from_fields(std::string uuid, std::string name, const std::vector<StatField>& fields) {
  LibvirtCounters c;
  c.uuid = std::move(uuid);
  c.name = std::move(name);
  for (const StatField& f : fields) {
    const std::string_view n = f.name;
    size_t i = 0;
    std::string_view rest;
    if (n == "cpu.time") {
      c.cpu_time_ns = f.number;
    } else if (n == "balloon.current") {
      c.balloon_current_kib = f.number;
    } else if (n == "balloon.maximum") {
      c.balloon_maximum_kib = f.number;
    } else if (n == "net.count") {
      if (f.number <= 4096) c.net.resize(f.number);
    } else if (n == "block.count") {
      if (f.number <= 4096) c.block.resize(f.number);
    } else if (split_indexed(n, "vcpu", i, rest)) {
      if (rest == "delay") at(c.vcpu_delay_ns, i) = f.number;
    } else if (split_indexed(n, "net", i, rest)) {
      auto& net = at(c.net, i);
      if (rest == "name")
        net.dev = f.text;
      else if (rest == "rx.bytes")
        net.rx_bytes = f.number;
      else if (rest == "tx.bytes")
        net.tx_bytes = f.number;
      else if (rest == "rx.pkts")
        net.rx_pkts = f.number;
      else if (rest == "tx.pkts")
        net.tx_pkts = f.number;
      else if (rest == "rx.drop")
        net.rx_drop = f.number;
      else if (rest == "tx.drop")
        net.tx_drop = f.number;
    } else if (split_indexed(n, "block", i, rest)) {
      auto& blk = at(c.block, i);
      if (rest == "name")
        blk.target = f.text;
      else if (rest == "path")
        blk.path = f.text;
      else if (rest == "rd.bytes")
        blk.rd_bytes = f.number;
      else if (rest == "wr.bytes")
        blk.wr_bytes = f.number;
      else if (rest == "rd.reqs")
        blk.rd_reqs = f.number;
      else if (rest == "wr.reqs")
        blk.wr_reqs = f.number;
    }
  }
  return c;
}

}  // namespace morph::agent
