// The facade: each operation begins a transaction and hands it to the part
// that owns its piece of the node.
#include "ebpfnet/node.hpp"

#include <algorithm>

#include "containers.hpp"
#include "datapath.hpp"
#include "ebpfnet/names.hpp"
#include "ebpfnet/node_txn.hpp"
#include "endpoints.hpp"
#include "lifecycle.hpp"
#include "policy.hpp"
#include "prefilter.hpp"
#include "overlay.hpp"
#include "routes.hpp"
#include "services.hpp"
#include "status.hpp"
#include "trace.hpp"
#include "uplink.hpp"

namespace ebpfnet {

using Begin = NodeTxn::Begin;

Node::Node(Env env, std::string name)
    : env_(std::move(env)), name_(std::move(name)), store_(env_.state_root, name_) {
  validate_name("node", name_);
}

Netns Node::netns() const {
  if (is_root()) return Netns::open_path("/proc/1/ns/net");
  return Netns::open_named(name_);
}

void Node::create(const Env& env, const std::string& name, Ipv4Cidr cidr, const Checkpoint& cp,
                  bool uplink_sandbox, const std::string& outside, std::optional<Ipv6Cidr> cidr6) {
  Node node(env, name);
  lifecycle::check(node, cidr, cidr6);
  NodeTxn txn(node, Begin::create, cp);
  lifecycle::create(txn, cidr, uplink_sandbox, outside, cidr6);
}

void Node::destroy(const Env& env, const std::string& name) {
  Node node(env, name);
  NodeTxn txn(node, Begin::if_exists);
  lifecycle::destroy(txn);
}

std::vector<std::string> Node::list(const Env& env) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& d : std::filesystem::directory_iterator(env.state_root, ec))
    if (std::filesystem::exists(d.path() / "state.json")) out.push_back(d.path().filename());
  std::sort(out.begin(), out.end());
  return out;
}

AttachResult Node::attach(const AttachOptions& opts, const Checkpoint& cp) {
  datapath::check(*this, store_.exists(), opts);
  NodeTxn txn(*this, opts.dry_run ? Begin::existing : Begin::create, cp);
  return datapath::attach(txn, opts);
}

EndpointRecord Node::add_endpoint(const EndpointRequest& req, const Checkpoint& cp) {
  return add_endpoints({req}, cp).front();
}

std::vector<EndpointRecord> Node::add_endpoints(const std::vector<EndpointRequest>& reqs, const Checkpoint& cp) {
  endpoints::check(reqs);
  NodeTxn txn(*this);
  return endpoints::add(txn, reqs, cp);
}

void Node::del_endpoint(const std::string& name) { del_endpoints({name}); }

void Node::del_endpoints(const std::vector<std::string>& names) {
  NodeTxn txn(*this);
  endpoints::del(txn, names);
}

std::vector<EndpointView> Node::endpoints() {
  std::vector<EndpointView> out;
  each_endpoint([&](const EndpointView& v) { out.push_back(v); });
  return out;
}

void Node::each_endpoint(const std::function<void(const EndpointView&)>& each) {
  NodeTxn txn(*this);
  endpoints::list(txn, each);
}

NodeStatus Node::status() {
  NodeTxn txn(*this);
  std::vector<EndpointView> views;
  std::vector<AttachmentView> attachments;
  NodeStatus s = status::read(txn, [](const NodeStatus&) {}, [&](const EndpointView& v, const AttachmentView& a) {
    views.push_back(v);
    attachments.push_back(a);
  });
  s.endpoints = std::move(views);
  attachments.insert(attachments.end(), s.attachments.begin(), s.attachments.end());
  s.attachments = std::move(attachments);
  return s;
}

void Node::status(const std::function<void(const NodeStatus&)>& head, const EndpointSink& each) {
  NodeTxn txn(*this);
  status::read(txn, head, each);
}

void Node::expose(const PublishRecord& p) {
  NodeTxn txn(*this);
  uplink::expose(txn, p);
}

void Node::unexpose(const std::string& endpoint, const std::string& proto, uint16_t target_port,
                    std::optional<uint16_t> port) {
  NodeTxn txn(*this);
  uplink::unexpose(txn, endpoint, proto, target_port, port);
}

std::vector<PublishRecord> Node::published() { return NodeTxn(*this).state().published; }

std::vector<CtFlow> Node::conntrack() { return NodeTxn(*this).maps().ct_flows(); }

size_t Node::conntrack_flush() { return NodeTxn(*this).maps().ct_flush(); }

void Node::route_add(const RouteRecord& r) {
  NodeTxn txn(*this);
  routes::add(txn, r);
}

void Node::route_del(const Ipv4Cidr& dst) {
  NodeTxn txn(*this);
  routes::del(txn, dst);
}

std::vector<RouteRecord> Node::routes() { return NodeTxn(*this).state().routes; }

void Node::set_native(const std::optional<Ipv4Cidr>& cidr) {
  NodeTxn txn(*this);
  routes::set_native(txn, cidr);
}

void Node::tunnel_add(const TunnelPeerRecord& peer) {
  NodeTxn txn(*this);
  overlay::add(txn, peer);
}

void Node::tunnel_del(const Ipv4Cidr& pool) {
  NodeTxn txn(*this);
  overlay::del(txn, pool);
}

std::optional<OverlayRecord> Node::overlay() { return NodeTxn(*this).state().overlay; }

void Node::prefilter_add(const std::vector<Ipv4Cidr>& entries) {
  NodeTxn txn(*this);
  prefilter::add(txn, entries);
}

void Node::prefilter_del(const std::vector<Ipv4Cidr>& entries) {
  NodeTxn txn(*this);
  prefilter::del(txn, entries);
}

void Node::prefilter_set(const std::vector<Ipv4Cidr>& entries) {
  NodeTxn txn(*this);
  prefilter::set(txn, entries);
}

std::vector<PrefilterCount> Node::prefilter() {
  NodeTxn txn(*this);
  return prefilter::list(txn);
}

void Node::service_add(const ServiceSpec& spec) {
  NodeTxn txn(*this);
  services::add(txn, spec);
}

void Node::service_del(const std::vector<std::string>& names) {
  NodeTxn txn(*this);
  services::del(txn, names);
}

void Node::service_backend(const std::string& service, const BackendSpec& backend) {
  NodeTxn txn(*this);
  services::set_backend(txn, service, backend);
}

void Node::service_drain(const std::string& service, const BackendRef& backend) {
  NodeTxn txn(*this);
  services::drain(txn, service, backend);
}

void Node::service_backend_del(const std::string& service, const BackendRef& backend) {
  NodeTxn txn(*this);
  services::remove_backend(txn, service, backend);
}

std::vector<ServiceView> Node::services() {
  NodeTxn txn(*this);
  return services::list(txn);
}

PolicySize Node::set_policy(const std::string& endpoint, const PolicySource& source) {
  NodeTxn txn(*this);
  return policies::set(txn, endpoint, source);
}

bool Node::delete_policy(const std::string& endpoint) {
  NodeTxn txn(*this);
  return policies::del(txn, endpoint);
}

std::vector<EndpointPolicyView> Node::policies() {
  NodeTxn txn(*this);
  return policies::list(txn.endpoints());
}

void Node::monitor(const MonitorOptions& opts, const std::function<bool(const MonitorEvent&)>& on_event,
                   const std::function<bool()>& keep_going) {
  status::monitor(*this, opts, on_event, keep_going);
}

TraceResult Node::trace(const TraceRequest& req) const { return trace::run(*this, req); }

std::optional<NodeState> Node::load_state() {
  NodeTxn txn(*this, Begin::if_exists);
  return txn.has_state() ? std::optional(txn.state()) : std::nullopt;
}

std::vector<EndpointRecord> Node::endpoint_records() {
  NodeTxn txn(*this, Begin::if_exists);
  return txn.has_state() ? txn.endpoints().all() : std::vector<EndpointRecord>{};
}

std::optional<EndpointRecord> Node::find_container_endpoint(const ContainerRef& c) {
  NodeTxn txn(*this, Begin::if_exists);
  return containers::find(txn, c);
}

std::optional<EndpointRecord> Node::del_container_endpoint(const ContainerRef& c) {
  NodeTxn txn(*this, Begin::if_exists);
  return containers::del(txn, c);
}

std::vector<EndpointRecord> Node::gc_container_endpoints(const std::string& network,
                                                         const std::vector<ContainerRef>& keep) {
  NodeTxn txn(*this, Begin::if_exists);
  return containers::gc(txn, network, keep);
}

void Node::service_add_many(const std::vector<ServiceSpec>& specs) {
  NodeTxn txn(*this);
  services::add_many(txn, specs);
}

}  // namespace ebpfnet
