#include "footprint.hpp"

#include <bpf/bpf.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "ebpfnet/bpf_maps.hpp"
#include "ebpfnet/datapath.hpp"
#include "ebpfnet/netlink.hpp"

namespace ebpfnet::test {

size_t map_entries(int fd) {
  bpf_map_info info{};
  __u32 len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) return 0;
  std::vector<uint8_t> key(info.key_size), next(info.key_size);
  size_t n = 0;
  for (const void* prev = nullptr; bpf_map_get_next_key(fd, prev, next.data()) == 0; prev = key.data()) {
    ++n;
    key.swap(next);
  }
  return n;
}

Footprint footprint(SandboxNode& sb) {
  Footprint f;
  const auto dir = sb.env().state_root / sb.name();
  const std::string text = read_file(dir / "state.json");
  if (!text.empty()) {
    auto j = nlohmann::json::parse(text);
    for (const auto& p : j["published"]) f.published.push_back(p.dump());
  }
  for (const auto& row : stored_endpoint_rows(dir)) {
    auto e = nlohmann::json::parse(row);
    f.endpoints.push_back(e["name"].get<std::string>() + " " + e["ip"].get<std::string>() +
                          (e["policy"].is_null() ? "" : " policed"));
  }
  f.journal = std::filesystem::exists(dir / "journal.json");
  Netlink nl = Netlink::in(sb.node().netns());
  for (const auto& l : nl.links()) f.links.push_back(l.name);
  for (const auto& a : nl.addresses())
    f.addresses.push_back(a.ip.str() + "/" + std::to_string(a.prefix) + " on " + std::to_string(a.ifindex));
  for (const auto& r : nl.routes())
    f.routes.push_back(r.dst.str() + (r.via ? " via " + r.via->str() : "") + " dev " + std::to_string(r.oif));
  f.pins = entries(sb.node().pin_dir() / "links");
  if (auto maps = Datapath::open_pinned_maps(sb.node().pin_dir()))
    for (const char* m : {"ep_by_ip", "ep_by_ifindex", "ep_stats", "published", "routed", "ep_policy",
                          "policy_cidr", "policy_port", "prefilter_addr", "prefilter_cidr", "prefilter_stats"})
      f.entries[m] = map_entries(maps->fd(m));
  for (auto* v : {&f.links, &f.addresses, &f.routes}) std::sort(v->begin(), v->end());
  return f;
}

std::ostream& operator<<(std::ostream& os, const Footprint& f) {
  auto list = [&](const char* what, const std::vector<std::string>& v) {
    os << "\n  " << what << ":";
    for (const auto& s : v) os << " [" << s << "]";
  };
  list("endpoints", f.endpoints);
  list("published", f.published);
  list("links", f.links);
  list("addresses", f.addresses);
  list("routes", f.routes);
  list("pins", f.pins);
  os << "\n  entries:";
  for (const auto& [m, n] : f.entries) os << " " << m << "=" << n;
  os << "\n  journal: " << (f.journal ? "yes" : "no");
  return os;
}

}  // namespace ebpfnet::test
