#include "hostagent/inventory/inventory.h"

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "common/enum_names.h"
#include "hostagent/inventory/domain_xml.h"
#include "hostagent/inventory/libvirt_error.h"
#include "hostagent/inventory/libvirt_ref.h"

namespace morph::agent {

namespace {
constexpr auto kVmEventKindNames = enum_names<VmEventKind::reconnected>(
    {"started", "stopped", "migrated_in", "migrated_out", "suspended", "resumed", "defined", "undefined",
     "device_added", "device_removed", "disconnected", "reconnected"});
}  // namespace

const char* vm_event_kind_name(VmEventKind k) noexcept {
  return kVmEventKindNames.name(k);
}

bool lifecycle_event_kind(int event, int detail, VmEventKind& kind) noexcept {
  switch (event) {
    case VIR_DOMAIN_EVENT_DEFINED:
      kind = VmEventKind::defined;
      return true;
    case VIR_DOMAIN_EVENT_UNDEFINED:
      kind = VmEventKind::undefined;
      return true;
    case VIR_DOMAIN_EVENT_STARTED:
      kind = detail == VIR_DOMAIN_EVENT_STARTED_MIGRATED ? VmEventKind::migrated_in : VmEventKind::started;
      return true;
    case VIR_DOMAIN_EVENT_SUSPENDED:
    case VIR_DOMAIN_EVENT_PMSUSPENDED:
      kind = VmEventKind::suspended;
      return true;
    case VIR_DOMAIN_EVENT_RESUMED:
      kind = VmEventKind::resumed;
      return true;
    case VIR_DOMAIN_EVENT_STOPPED:
      kind = detail == VIR_DOMAIN_EVENT_STOPPED_MIGRATED ? VmEventKind::migrated_out : VmEventKind::stopped;
      return true;
    default:
      return false;  // SHUTDOWN (STOPPED follows), CRASHED (STOPPED follows unless preserved)
  }
}

namespace {

// ---- libvirt plumbing -----------------------------------------------------------------------------------

void silence_libvirt(void*, virErrorPtr e) {
  // libvirt prints every error to stderr by default; callers get them as Result errors instead.
  if (e != nullptr && e->message != nullptr) spdlog::debug("libvirt: {}", e->message);
}

// The default event loop is process-wide: registered once, run by one thread while any Inventory lives.
class EventLoop {
 public:
  static Status acquire() {
    std::lock_guard lk(mu_);
    static std::once_flag once;
    static int reg = 0;
    std::call_once(once, [] {
      virSetErrorFunc(nullptr, silence_libvirt);
      reg = virEventRegisterDefaultImpl();
    });
    if (reg < 0) return libvirt_error("registering libvirt's default event loop");
    if (refs_++ == 0) {
      quit_ = false;
      thread_ = std::thread([] {
        while (!quit_.load()) {
          if (virEventRunDefaultImpl() < 0) {
            spdlog::warn("libvirt event loop iteration failed: {}", libvirt_error("event loop").what());
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
          }
        }
      });
    }
    return {};
  }
  static void release() {
    std::lock_guard lk(mu_);
    if (--refs_ > 0) return;
    quit_ = true;
    // An immediate one-shot timer wakes virEventRunDefaultImpl so the thread sees quit_.
    int timer = virEventAddTimeout(
        0, [](int id, void*) { virEventRemoveTimeout(id); }, nullptr, nullptr);
    if (timer < 0) spdlog::warn("cannot wake libvirt's event loop; its thread stops at the next event");
    thread_.join();
  }

 private:
  static inline std::mutex mu_;
  static inline int refs_ = 0;
  static inline std::atomic<bool> quit_{false};
  static inline std::thread thread_;
};

struct RawEvent {
  VmEventKind kind = VmEventKind::started;
  std::string uuid, name, device;
  std::chrono::steady_clock::time_point received;
};

}  // namespace

// ---- shared state ---------------------------------------------------------------------------------------
// Core is held by shared_ptr from Impl and from every opaque pointer handed to libvirt, so a callback that
// libvirt runs late (after deregistration raced with dispatch) still touches live memory.
struct Core {
  InventoryOptions opt;

  mutable std::mutex mu;  // guards everything below
  virConnectPtr conn = nullptr;
  std::vector<int> callback_ids;
  bool lost = false;
  bool stopping = false;
  std::condition_variable supervisor_cv;

  std::deque<RawEvent> queue;
  bool dispatcher_stop = false;
  std::condition_variable queue_cv;

  std::map<Inventory::SubscriptionId, std::shared_ptr<VmEventCallback>> subscribers;
  Inventory::SubscriptionId next_id = 1;

  std::mutex cache_mu;
  std::map<std::string, VmInfo> cache;  // uuid → last known VmInfo, for events about vanished domains

  void push(RawEvent ev) {
    {
      std::lock_guard lk(mu);
      if (dispatcher_stop) return;
      queue.push_back(std::move(ev));
    }
    queue_cv.notify_one();
  }

  Result<ConnRef> conn_ref() const {
    std::lock_guard lk(mu);
    if (conn == nullptr) return Error(Errc::unavailable, "not connected to " + opt.uri + " (reconnecting)");
    virConnectRef(conn);
    return ConnRef(conn);
  }

  // `known_persistent`: whether the domain has a persistent definition, when the caller already knows
  // (list() learns it for all domains from its listings); asked of libvirt otherwise.
  Result<VmInfo> describe(virDomainPtr dom, std::optional<bool> known_persistent = std::nullopt);
  Result<VmInfo> describe(const std::string& uuid);
  Result<virConnectPtr> connect(const std::shared_ptr<Core>& self);
  static void teardown(virConnectPtr c, const std::vector<int>& ids);
};

namespace {

using Opaque = std::shared_ptr<Core>;
void free_opaque(void* p) {
  delete static_cast<Opaque*>(p);
}
Core& core_of(void* p) {
  return **static_cast<Opaque*>(p);
}

RawEvent raw_event(virDomainPtr dom, VmEventKind kind, const char* device) {
  RawEvent ev{kind, {}, {}, device ? device : "", std::chrono::steady_clock::now()};
  char uuid[VIR_UUID_STRING_BUFLEN] = {};
  if (virDomainGetUUIDString(dom, uuid) == 0) ev.uuid = uuid;
  if (const char* n = virDomainGetName(dom)) ev.name = n;
  return ev;
}

void on_lifecycle(virConnectPtr, virDomainPtr dom, int event, int detail, void* opaque) {
  VmEventKind kind{};
  if (!lifecycle_event_kind(event, detail, kind)) return;
  core_of(opaque).push(raw_event(dom, kind, nullptr));
}
void on_device_added(virConnectPtr, virDomainPtr dom, const char* alias, void* opaque) {
  core_of(opaque).push(raw_event(dom, VmEventKind::device_added, alias));
}
void on_device_removed(virConnectPtr, virDomainPtr dom, const char* alias, void* opaque) {
  core_of(opaque).push(raw_event(dom, VmEventKind::device_removed, alias));
}
void on_close(virConnectPtr c, int reason, void* opaque) {
  Core& core = core_of(opaque);
  {
    std::lock_guard lk(core.mu);
    if (c != core.conn || core.stopping) return;
    core.lost = true;
  }
  spdlog::warn("libvirt connection to {} lost (reason {}); reconnecting", core.opt.uri, reason);
  core.supervisor_cv.notify_all();
}

}  // namespace

Result<virConnectPtr> Core::connect(const std::shared_ptr<Core>& self) {
  virConnectPtr c = virConnectOpen(opt.uri.c_str());
  if (c == nullptr) return libvirt_error("connecting to " + opt.uri);
  virConnSetErrorFunc(c, nullptr, silence_libvirt);
  if (opt.keepalive_interval.count() > 0 &&
      virConnectSetKeepAlive(c, static_cast<int>(opt.keepalive_interval.count()), opt.keepalive_count) < 0) {
    Error e = libvirt_error("enabling keepalive on " + opt.uri);
    virConnectClose(c);
    return e;
  }
  // Publish the connection before registering callbacks so on_close recognises it.
  {
    std::lock_guard lk(mu);
    conn = c;
    lost = false;
    callback_ids.clear();
  }
  auto fail = [&](const std::string& what) -> Error {
    Error e = libvirt_error(what);
    std::vector<int> ids;
    {
      std::lock_guard lk(mu);
      conn = nullptr;
      ids.swap(callback_ids);
    }
    teardown(c, ids);
    return e;
  };
  if (virConnectRegisterCloseCallback(c, on_close, new Opaque(self), free_opaque) < 0)
    return fail("registering the close callback");
  struct Reg {
    int id;
    virConnectDomainEventGenericCallback cb;
    const char* what;
  };
  const Reg regs[] = {
      {VIR_DOMAIN_EVENT_ID_LIFECYCLE, VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle), "lifecycle"},
      {VIR_DOMAIN_EVENT_ID_DEVICE_ADDED, VIR_DOMAIN_EVENT_CALLBACK(on_device_added), "device-added"},
      {VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED, VIR_DOMAIN_EVENT_CALLBACK(on_device_removed), "device-removed"},
  };
  for (const Reg& r : regs) {
    auto* op = new Opaque(self);
    int id = virConnectDomainEventRegisterAny(c, nullptr, r.id, r.cb, op, free_opaque);
    if (id < 0) {
      delete op;  // libvirt frees opaque only on success
      return fail(std::string("registering ") + r.what + " events");
    }
    std::lock_guard lk(mu);
    callback_ids.push_back(id);
  }
  return c;
}

void Core::teardown(virConnectPtr c, const std::vector<int>& ids) {
  if (c == nullptr) return;
  // On a dead connection these fail; libvirt still drops the callbacks locally, which is all we need.
  for (int id : ids) virConnectDomainEventDeregisterAny(c, id);
  virConnectUnregisterCloseCallback(c, on_close);
  virConnectClose(c);
}

namespace {

// virDomainGetXMLDesc as a string.
Result<std::string> domain_xml_desc(virDomainPtr dom, unsigned flags, const std::string& what) {
  char* xml = virDomainGetXMLDesc(dom, flags);
  if (xml == nullptr) return libvirt_error(what);
  std::string out(xml);
  free(xml);  // NOLINT: libvirt allocates with malloc
  return out;
}

}  // namespace

// The baseline comes from the persistent definition, not from what a shift put in force (shifts are
// VIR_DOMAIN_AFFECT_LIVE only), so a running persistent domain costs a second XML read; the state comes
// from the live XML instead of a virDomainIsActive round trip (docs/architecture.md "Inventory" has what
// it costs). An inactive domain's XML is its definition; a transient domain has only its live definition,
// so its baseline is what is in force.
Result<VmInfo> Core::describe(virDomainPtr dom, std::optional<bool> known_persistent) {
  char uuid[VIR_UUID_STRING_BUFLEN] = {};
  virDomainGetUUIDString(dom, uuid);  // kept in the handle: no call to libvirtd
  const std::string who = std::string("vm=") + uuid;
  MORPH_TRY_ASSIGN(std::string live_xml, domain_xml_desc(dom, 0, who + ": reading domain XML"));
  auto parsed = parse_domain_xml(live_xml);
  if (!parsed.ok()) return std::move(parsed).error().with_context(who + ": live XML");
  DomainXml live = std::move(*parsed);
  // libvirt prints <domain id='N'> exactly while the domain runs.
  if (live.vm.libvirt_id < 0) return std::move(live.vm);
  const int persistent = known_persistent ? int{*known_persistent} : virDomainIsPersistent(dom);
  if (persistent < 0) return libvirt_error(who + ": querying persistence");
  if (persistent == 1) {
    MORPH_TRY_ASSIGN(std::string def_xml,
                     domain_xml_desc(dom, VIR_DOMAIN_XML_INACTIVE, who + ": reading the persistent definition"));
    auto definition = parse_domain_xml(def_xml);
    if (!definition.ok()) return std::move(definition).error().with_context("persistent definition of " + who);
    MORPH_TRY_ASSIGN(live, with_definition_baseline(std::move(live), *definition));
  }
  VmInfo vm = std::move(live.vm);
  if (Status s = resolve_host_handles(vm, opt.paths); !s.ok())
    spdlog::warn("vm={} name={}: host handles unresolved: {}", vm.uuid, vm.name, s.error().what());
  return vm;
}

Result<VmInfo> Core::describe(const std::string& uuid) {
  MORPH_TRY_ASSIGN(ConnRef c, conn_ref());
  DomainRef dom(virDomainLookupByUUIDString(c.get(), uuid.c_str()));
  if (!dom) return libvirt_error("looking up domain " + uuid);
  return describe(dom.get());
}

// ---- Impl: the threads ----------------------------------------------------------------------------------

struct Inventory::Impl {
  std::shared_ptr<Core> core = std::make_shared<Core>();
  std::thread supervisor;
  std::thread dispatcher;
  bool loop_acquired = false;

  void run_supervisor();
  void run_dispatcher();
  VmEvent build(RawEvent raw);
};

void Inventory::Impl::run_supervisor() {
  Core& c = *core;
  std::unique_lock lk(c.mu);
  while (true) {
    c.supervisor_cv.wait(lk, [&] { return c.stopping || c.lost; });
    if (c.stopping) return;
    virConnectPtr old = c.conn;
    std::vector<int> ids;
    ids.swap(c.callback_ids);
    c.conn = nullptr;
    c.lost = false;
    lk.unlock();
    Core::teardown(old, ids);
    c.push(RawEvent{VmEventKind::disconnected, {}, {}, {}, std::chrono::steady_clock::now()});
    auto backoff = c.opt.reconnect_min;
    while (true) {
      auto r = c.connect(core);
      if (r.ok()) {
        spdlog::info("reconnected to {}", c.opt.uri);
        c.push(RawEvent{VmEventKind::reconnected, {}, {}, {}, std::chrono::steady_clock::now()});
        break;
      }
      spdlog::warn("reconnecting to {} failed, retrying in {} ms: {}", c.opt.uri, backoff.count(), r.error().what());
      lk.lock();
      if (c.supervisor_cv.wait_for(lk, backoff, [&] { return c.stopping; })) return;
      lk.unlock();
      backoff = std::min(backoff * 2, c.opt.reconnect_max);
    }
    lk.lock();
  }
}

VmEvent Inventory::Impl::build(RawEvent raw) {
  VmEvent ev{raw.kind, {}, std::move(raw.device), raw.received};
  if (raw.kind == VmEventKind::disconnected || raw.kind == VmEventKind::reconnected) return ev;
  Core& c = *core;
  const bool gone =
      raw.kind == VmEventKind::stopped || raw.kind == VmEventKind::migrated_out || raw.kind == VmEventKind::undefined;
  std::optional<VmInfo> fresh;
  if (!gone) {
    auto d = c.describe(raw.uuid);
    if (d.ok())
      fresh = std::move(*d);
    else
      spdlog::debug("vm={} name={}: cannot re-read after {} event: {}", raw.uuid, raw.name,
                    vm_event_kind_name(raw.kind), d.error().what());
  }
  std::lock_guard lk(c.cache_mu);
  auto it = c.cache.find(raw.uuid);
  if (fresh) {
    ev.vm = *fresh;
    if (fresh->libvirt_id >= 0) c.cache[raw.uuid] = std::move(*fresh);
  } else if (it != c.cache.end()) {
    ev.vm = it->second;
  } else {
    ev.vm.uuid = raw.uuid;
    ev.vm.name = raw.name;
  }
  if (gone) {
    ev.vm.libvirt_id = -1;  // handles stay: they are what the subscriber must now remove
    if (it != c.cache.end()) c.cache.erase(it);
  }
  return ev;
}

void Inventory::Impl::run_dispatcher() {
  Core& c = *core;
  while (true) {
    RawEvent raw;
    {
      std::unique_lock lk(c.mu);
      c.queue_cv.wait(lk, [&] { return c.dispatcher_stop || !c.queue.empty(); });
      if (c.dispatcher_stop) return;
      raw = std::move(c.queue.front());
      c.queue.pop_front();
    }
    VmEvent ev = build(std::move(raw));
    if (ev.vm.uuid.empty())
      spdlog::info("inventory: {}", vm_event_kind_name(ev.kind));
    else
      spdlog::info("vm={} name={} event {}{}{}", ev.vm.uuid, ev.vm.name, vm_event_kind_name(ev.kind),
                   ev.device.empty() ? "" : " device=", ev.device);
    std::vector<std::shared_ptr<VmEventCallback>> subs;
    {
      std::lock_guard lk(c.mu);
      for (auto& [id, cb] : c.subscribers) subs.push_back(cb);
    }
    for (auto& cb : subs) {
      try {
        (*cb)(ev);
      } catch (const std::exception& e) {
        spdlog::error("inventory event subscriber threw on {} for vm={} name={}: {}", vm_event_kind_name(ev.kind),
                      ev.vm.uuid, ev.vm.name, e.what());
      }
    }
  }
}

// ---- Inventory ------------------------------------------------------------------------------------------

Inventory::Inventory(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Result<std::unique_ptr<Inventory>> Inventory::open(InventoryOptions options) {
  if (options.paths.cgroup2_root.empty()) {
    MORPH_TRY_ASSIGN(options.paths.cgroup2_root, detect_cgroup2_root());
  }
  if (options.reconnect_min.count() <= 0 || options.reconnect_max < options.reconnect_min)
    return Error(Errc::invalid_argument, "inventory: reconnect backoff must satisfy 0 < min <= max");
  auto impl = std::make_unique<Impl>();
  impl->core->opt = std::move(options);
  MORPH_TRY(EventLoop::acquire());
  impl->loop_acquired = true;
  // From here ~Inventory undoes whatever was set up.
  std::unique_ptr<Inventory> inv(new Inventory(std::move(impl)));
  Impl& im = *inv->impl_;
  auto c = im.core->connect(im.core);
  if (!c.ok()) return std::move(c).error();
  im.dispatcher = std::thread([&im] { im.run_dispatcher(); });
  im.supervisor = std::thread([&im] { im.run_supervisor(); });
  spdlog::info("inventory connected to {} (cgroup2 root {})", im.core->opt.uri, im.core->opt.paths.cgroup2_root);
  return inv;
}

Inventory::~Inventory() {
  Core& c = *impl_->core;
  {
    std::lock_guard lk(c.mu);
    c.stopping = true;
  }
  c.supervisor_cv.notify_all();
  if (impl_->supervisor.joinable()) impl_->supervisor.join();
  virConnectPtr conn = nullptr;
  std::vector<int> ids;
  {
    std::lock_guard lk(c.mu);
    conn = c.conn;
    c.conn = nullptr;
    ids.swap(c.callback_ids);
  }
  Core::teardown(conn, ids);
  {
    std::lock_guard lk(c.mu);
    c.dispatcher_stop = true;
  }
  c.queue_cv.notify_all();
  if (impl_->dispatcher.joinable()) impl_->dispatcher.join();
  if (impl_->loop_acquired) EventLoop::release();
}

Result<std::vector<VmInfo>> Inventory::list() {
  Core& c = *impl_->core;
  MORPH_TRY_ASSIGN(ConnRef conn, c.conn_ref());
  // Persistent and transient running domains in two listings, so describe() need not ask each domain.
  std::vector<std::pair<DomainRef, bool>> owned;  // domain, persistent
  for (bool persistent : {true, false}) {
    virDomainPtr* doms = nullptr;
    const unsigned flags = VIR_CONNECT_LIST_DOMAINS_ACTIVE |
                           (persistent ? VIR_CONNECT_LIST_DOMAINS_PERSISTENT : VIR_CONNECT_LIST_DOMAINS_TRANSIENT);
    int n = virConnectListAllDomains(conn.get(), &doms, flags);
    if (n < 0)
      return libvirt_error(persistent ? "listing running persistent domains" : "listing running transient domains");
    for (int i = 0; i < n; ++i) owned.emplace_back(DomainRef(doms[i]), persistent);
    free(doms);  // NOLINT: libvirt allocates with malloc
  }
  std::vector<VmInfo> out;
  for (auto& [d, persistent] : owned) {
    auto vm = c.describe(d.get(), persistent);
    if (!vm.ok()) {
      // Most often the domain stopped between the listing and this read; its stopped event follows.
      spdlog::debug("skipping a domain in list(): {}", vm.error().what());
      continue;
    }
    if (vm->libvirt_id < 0) continue;
    // A domain defined or undefined between the two listings is in both: keep the first.
    if (std::any_of(out.begin(), out.end(), [&](const VmInfo& o) { return o.uuid == vm->uuid; })) continue;
    out.push_back(std::move(*vm));
  }
  std::lock_guard lk(c.cache_mu);
  c.cache.clear();
  for (const VmInfo& vm : out) c.cache[vm.uuid] = vm;
  return out;
}

Result<uint64_t> Inventory::balloon_kib(const std::string& uuid) {
  MORPH_TRY_ASSIGN(ConnRef conn, impl_->core->conn_ref());
  DomainRef dom(virDomainLookupByUUIDString(conn.get(), uuid.c_str()));
  if (!dom) return libvirt_error("looking up domain " + uuid);
  virDomainMemoryStatStruct stats[VIR_DOMAIN_MEMORY_STAT_NR];
  int n = virDomainMemoryStats(dom.get(), stats, VIR_DOMAIN_MEMORY_STAT_NR, 0);
  if (n < 0) return libvirt_error("reading memory stats of " + uuid);
  for (int i = 0; i < n; ++i)
    if (stats[i].tag == VIR_DOMAIN_MEMORY_STAT_ACTUAL_BALLOON) return static_cast<uint64_t>(stats[i].val);
  return Error(Errc::not_found, "domain " + uuid + " reports no balloon size");
}

Result<std::vector<LibvirtCounters>> Inventory::counters() {
  MORPH_TRY_ASSIGN(ConnRef conn, impl_->core->conn_ref());
  const unsigned stats = VIR_DOMAIN_STATS_CPU_TOTAL | VIR_DOMAIN_STATS_VCPU | VIR_DOMAIN_STATS_INTERFACE |
                         VIR_DOMAIN_STATS_BLOCK | VIR_DOMAIN_STATS_BALLOON;
  virDomainStatsRecordPtr* recs = nullptr;
  int n = virConnectGetAllDomainStats(conn.get(), stats, &recs, VIR_CONNECT_GET_ALL_DOMAINS_STATS_ACTIVE);
  if (n < 0) return libvirt_error("reading domain stats");
  std::vector<LibvirtCounters> out;
  out.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    const virDomainStatsRecord* r = recs[i];
    char uuid[VIR_UUID_STRING_BUFLEN] = {};
    virDomainGetUUIDString(r->dom, uuid);
    const char* name = virDomainGetName(r->dom);
    std::vector<StatField> fields;
    fields.reserve(static_cast<size_t>(r->nparams));
    for (int j = 0; j < r->nparams; ++j) {
      const virTypedParameter& p = r->params[j];
      StatField f{p.field, 0, {}};
      switch (p.type) {
        case VIR_TYPED_PARAM_INT:
          f.number = p.value.i < 0 ? 0 : static_cast<uint64_t>(p.value.i);
          break;
        case VIR_TYPED_PARAM_UINT:
          f.number = p.value.ui;
          break;
        case VIR_TYPED_PARAM_LLONG:
          f.number = p.value.l < 0 ? 0 : static_cast<uint64_t>(p.value.l);
          break;
        case VIR_TYPED_PARAM_ULLONG:
          f.number = p.value.ul;
          break;
        case VIR_TYPED_PARAM_BOOLEAN:
          f.number = p.value.b ? 1 : 0;
          break;
        case VIR_TYPED_PARAM_STRING:
          f.text = p.value.s ? p.value.s : "";
          break;
        default:
          break;  // doubles: none of the fields we read
      }
      fields.push_back(std::move(f));
    }
    out.push_back(counters_from_fields(uuid, name ? name : "", fields));
  }
  virDomainStatsRecordListFree(recs);
  return out;
}

Inventory::SubscriptionId Inventory::subscribe(VmEventCallback callback) {
  Core& c = *impl_->core;
  std::lock_guard lk(c.mu);
  SubscriptionId id = c.next_id++;
  c.subscribers.emplace(id, std::make_shared<VmEventCallback>(std::move(callback)));
  return id;
}

void Inventory::unsubscribe(SubscriptionId id) {
  Core& c = *impl_->core;
  std::lock_guard lk(c.mu);
  c.subscribers.erase(id);
}

bool Inventory::connected() const {
  std::lock_guard lk(impl_->core->mu);
  return impl_->core->conn != nullptr;
}

const HostPaths& Inventory::paths() const {
  return impl_->core->opt.paths;
}

}  // namespace morph::agent
