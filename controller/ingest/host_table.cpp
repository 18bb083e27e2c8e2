#include "controller/ingest/host_table.h"

#include <spdlog/spdlog.h>

namespace morph::controller {

using msg::sv;

HostEntry& HostTable::entry(std::string_view host) {
  auto it = hosts_.find(host);
  if (it == hosts_.end()) {
    it = hosts_.emplace(std::string(host), HostEntry{}).first;
    it->second.host = std::string(host);
  }
  return it->second;
}

const HostEntry* HostTable::find(std::string_view host) const {
  auto it = hosts_.find(host);
  return it == hosts_.end() ? nullptr : &it->second;
}

HostTable::Change HostTable::apply_hello(const v1::HostHello& hello, std::span<const uint8_t> buf, std::string_view rid,
                                         uint64_t now) {
  auto& e = entry(sv(hello.host()));
  bool was_up = e.up;
  if (e.hello_seen && e.incarnation != hello.incarnation())
    spdlog::info("host={} restarted (agent incarnation {} → {})", e.host, e.incarnation, hello.incarnation());
  e.incarnation = hello.incarnation();
  e.hello_seen = true;
  e.routing_id = std::string(rid);
  e.hello.assign(buf.begin(), buf.end());
  e.last_seen_ns = now;
  e.up = true;
  // The VM set is replaced wholesale: drop KPIs of VMs the host no longer reports.
  if (hello.vms()) {
    std::map<std::string, kpi::VmKpis, std::less<>> keep;
    for (auto* vm : *hello.vms())
      if (auto it = e.vm_kpis.find(sv(vm->uuid())); it != e.vm_kpis.end()) keep.insert(std::move(*it));
    e.vm_kpis = std::move(keep);
  }
  return was_up ? Change::none : Change::came_up;
}

bool HostTable::apply_heartbeat(std::string_view host, std::string_view rid, uint64_t now, Change& change) {
  change = Change::none;
  auto it = hosts_.find(host);
  if (it == hosts_.end() || !it->second.hello_seen) return false;
  auto& e = it->second;
  e.last_seen_ns = now;
  e.routing_id = std::string(rid);
  if (!e.up) {
    e.up = true;
    change = Change::came_up;
  }
  return true;
}

uint64_t HostTable::apply_kpi_report(const v1::KpiReport& r, zmq::message_t&& m, uint64_t now, Change& change) {
  change = Change::none;
  auto& e = entry(sv(r.host()));
  uint64_t missing = 0;
  if (e.kpi_reports > 0 && e.kpi_incarnation == r.incarnation()) {
    if (r.seq() > e.kpi_seq + 1)
      missing = r.seq() - e.kpi_seq - 1;
    else if (r.seq() <= e.kpi_seq)
      spdlog::debug("host={} KpiReport seq {} after {}: duplicate or reordered", e.host, r.seq(), e.kpi_seq);
  }
  e.kpi_incarnation = r.incarnation();
  e.kpi_seq = r.seq();
  ++e.kpi_reports;
  ++total_reports_;
  e.kpi_gaps += missing;
  total_gaps_ += missing;
  e.last_seen_ns = now;
  if (!e.up && e.hello_seen) {
    e.up = true;
    change = Change::came_up;
  }
  if (r.vms()) {
    for (auto* k : *r.vms()) {
      auto it = e.vm_kpis.find(sv(k->uuid()));
      if (it == e.vm_kpis.end()) {
        if (e.vm_kpis.size() >= msg::Limits::kMaxVms) continue;
        it = e.vm_kpis.emplace(std::string(sv(k->uuid())), kpi::VmKpis{}).first;
        it->second.uuid = it->first;
      }
      msg::apply_vm_kpis(it->second, *k);
    }
  }
  e.latest_report = std::move(m);
  return missing;
}

std::vector<std::string> HostTable::expire(uint64_t now, uint64_t timeout_ns) {
  std::vector<std::string> down;
  for (auto& [name, e] : hosts_) {
    if (e.up && now > e.last_seen_ns + timeout_ns) {
      e.up = false;
      down.push_back(name);
    }
  }
  return down;
}

flatbuffers::Offset<v1::HostStatus> build_host_status(flatbuffers::FlatBufferBuilder& fbb, const HostEntry& h) {
  flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<v1::ResourceAmount>>> cap;
  uint32_t vm_count = 0;
  if (!h.hello.empty()) {
    auto* hello = flatbuffers::GetRoot<v1::HostHello>(h.hello.data());
    if (hello->capacity()) {
      std::vector<flatbuffers::Offset<v1::ResourceAmount>> v;
      for (auto* a : *hello->capacity()) v.push_back(v1::CreateResourceAmount(fbb, a->resource(), a->amount()));
      cap = fbb.CreateVector(v);
    }
    vm_count = hello->vms() ? hello->vms()->size() : 0;
  }
  auto name = fbb.CreateString(h.host);
  return v1::CreateHostStatus(fbb, name, h.up, h.incarnation, h.last_seen_ns, cap, vm_count, h.kpi_seq, h.kpi_gaps,
                              h.bad_messages);
}

void build_vm_statuses(flatbuffers::FlatBufferBuilder& fbb, const HostEntry& h,
                       std::vector<flatbuffers::Offset<v1::VmStatus>>& out, const OwnerOf& owner_of) {
  if (h.hello.empty()) return;
  auto* hello = flatbuffers::GetRoot<v1::HostHello>(h.hello.data());
  if (!hello->vms()) return;
  for (auto* vm : *hello->vms()) {
    std::vector<flatbuffers::Offset<v1::ResourceAmount>> base;
    if (vm->baseline())
      for (auto* a : *vm->baseline()) base.push_back(v1::CreateResourceAmount(fbb, a->resource(), a->amount()));
    std::vector<flatbuffers::Offset<v1::ResourceAmount>> ceiling;
    if (vm->ceiling())
      for (auto* a : *vm->ceiling()) ceiling.push_back(v1::CreateResourceAmount(fbb, a->resource(), a->amount()));
    auto info = v1::CreateVmBaselineInfoDirect(fbb, vm->uuid()->c_str(), vm->name() ? vm->name()->c_str() : nullptr,
                                               vm->owner() ? vm->owner()->c_str() : nullptr,
                                               vm->sla_class() ? vm->sla_class()->c_str() : nullptr, vm->running(),
                                               &base, vm->max_memory_mib(), &ceiling);
    const std::string reported = vm->owner() ? vm->owner()->str() : std::string();
    const std::string owner = owner_of ? owner_of(vm->uuid()->str(), reported) : reported;
    out.push_back(v1::CreateVmStatus(fbb, fbb.CreateString(h.host), info, fbb.CreateString(owner)));
  }
}

}  // namespace morph::controller
