// monitor: the datapath's drop and flow events, live from its ring buffer.
#include "status.hpp"

#include <arpa/inet.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <set>

#include "ebpfnet/error.hpp"
#include "uplink.hpp"

namespace ebpfnet::status {
namespace {

// Deadlines are renewed this often and reach this far: a monitor that dies
// stops the events within seconds, with nothing to clean up.
constexpr auto kRenewEvery = std::chrono::milliseconds(500);
constexpr uint64_t kListenAheadNs = 3'000'000'000ull;
constexpr int kPollMs = 100;

struct RingBufferDeleter {
  void operator()(ring_buffer* rb) const { ring_buffer__free(rb); }
};

// What names an event: the node's endpoints and its services.
struct Known {
  std::vector<EndpointRecord> endpoints;
  std::vector<ServiceRecord> services;
};

// Names for what an event carries only as addresses and indexes.
class EventNamer {
 public:
  explicit EventNamer(std::function<Known()> load) : load_(std::move(load)) { reload(); }

  MonitorEvent name(const ebpfnet_event& ev) {
    MonitorEvent m{ev, "", "", ""};
    const EndpointRecord* e = find(ev.endpoint);
    if (!e && ev.endpoint && !reloaded_for_.contains(ev.endpoint)) {
      // An endpoint added since the monitor started.
      reloaded_for_.insert(ev.endpoint);
      reload();
      e = find(ev.endpoint);
    }
    if (e) m.endpoint = e->name;
    const bool policy = ev.type == EBPFNET_EVENT_FLOW || ev.reason == EBPFNET_DROP_POLICY_DENY ||
                        ev.reason == EBPFNET_DROP_POLICY_DEFAULT;
    if (policy && e && e->policy) {
      const PolicyDir dir = ev.dir == EBPFNET_INGRESS ? PolicyDir::ingress : PolicyDir::egress;
      const DirectionPolicy& dp = e->policy->dir(dir);
      if (ev.rule == 0)
        m.rule = std::string(to_string(dir)) + " default " + std::string(to_string(dp.default_action));
      else if (ev.rule <= dp.rules.size())
        m.rule = std::string(to_string(dir)) + " rule " + std::to_string(ev.rule) + ": " +
                 format_rule(dp.rules[ev.rule - 1], dir);
    }
    m.service = service_of(ev);
    return m;
  }

 private:
  // A node port is named only for a refusal: the event does not say whether
  // its destination was the uplink's address.
  std::string service_of(const ebpfnet_event& ev) const {
    const uint16_t port = ntohs(ev.tuple.dport);
    for (const auto& v : known_.services) {
      if (uplink::proto_number(v.proto) != ev.tuple.proto) continue;
      if (v.vip && v.vip->be() == ev.tuple.daddr && v.port == port) return v.name;
      if (v.node_port == port && ev.type == EBPFNET_EVENT_DROP && ev.reason == EBPFNET_DROP_NO_BACKEND)
        return v.name;
    }
    return "";
  }

  const EndpointRecord* find(__be32 ip) const {
    for (const auto& e : known_.endpoints)
      if (e.ip.be() == ip) return &e;
    return nullptr;
  }
  void reload() { known_ = load_(); }

  std::function<Known()> load_;
  Known known_;
  std::set<__be32> reloaded_for_;
};

struct Listener {
  EventNamer* namer;
  const std::function<bool(const MonitorEvent&)>* on_event;
  bool stop = false;
};

int on_sample(void* ctx, void* data, size_t size) {
  auto* l = static_cast<Listener*>(ctx);
  if (size < sizeof(ebpfnet_event) || l->stop) return 0;
  ebpfnet_event ev;
  std::memcpy(&ev, data, sizeof ev);
  if (!(*l->on_event)(l->namer->name(ev))) l->stop = true;
  return 0;
}

}  // namespace

void monitor(Node& node, const MonitorOptions& opts, const std::function<bool(const MonitorEvent&)>& on_event,
             const std::function<bool()>& keep_going) {
  DatapathMaps maps = attached_maps(node);
  EventNamer namer([&node] {
    Known k;
    NodeTxn txn(node, NodeTxn::Begin::if_exists);
    if (txn.has_state()) {
      k.endpoints = txn.endpoints().all();
      k.services = txn.services().all();
    }
    return k;
  });
  Listener listener{&namer, &on_event};
  std::unique_ptr<ring_buffer, RingBufferDeleter> rb(
      ring_buffer__new(maps.fd("events"), on_sample, &listener, nullptr));
  if (!rb) throw_errno(errno, "opening the events ring buffer of node " + node.name());

  auto renewed = std::chrono::steady_clock::time_point{};
  while (!listener.stop && keep_going()) {
    if (auto now = std::chrono::steady_clock::now(); now - renewed >= kRenewEvery) {
      const uint64_t until = monotonic_ns() + kListenAheadNs;
      maps.extend_monitor(opts.drops ? until : 0, opts.flows ? until : 0);
      renewed = now;
    }
    int n = ring_buffer__poll(rb.get(), kPollMs);
    if (n < 0 && n != -EINTR) throw_errno(-n, "reading events of node " + node.name());
  }
}

}  // namespace ebpfnet::status
