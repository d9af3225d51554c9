#include "marks.hpp"

#include "ebpfnet/error.hpp"
#include "ebpfnet/netlink.hpp"

namespace ebpfnet::marks {
namespace {

// The namespace's links, or nothing when it went away meanwhile.
std::vector<Link> links_of(std::string_view name) {
  try {
    return Netlink::in(Netns::open_named(name)).links();
  } catch (const Error& e) {
    if (e.code() == Errc::not_found) return {};
    throw;
  }
}

std::string loopback_mark(const std::vector<Link>& links) {
  for (const auto& l : links)
    if (l.name == "lo") return l.alias;
  return {};
}

}  // namespace

std::string of(const Node& node, std::string_view endpoint) {
  std::string m = "ebpfnet node=" + node.name();
  if (!endpoint.empty()) m += " endpoint=" + std::string(endpoint);
  return m;
}

void mark_netns(const Netns& ns, const std::string& mark) {
  Netlink nl = Netlink::in(ns);
  auto lo = nl.link("lo");
  if (!lo) throw Error(Errc::failed, "a new namespace has no loopback to mark");
  nl.set_alias(lo->ifindex, mark);
}

bool netns_is(std::string_view name, const std::string& mark, bool fresh_too) {
  if (!netns::exists(name)) return false;
  const std::vector<Link> links = links_of(name);
  const std::string found = loopback_mark(links);
  if (!found.empty()) return found == mark;
  return fresh_too && links.size() == 1;
}

std::vector<std::string> netns_of(const Node& node) {
  const std::string own = of(node);
  std::vector<std::string> out;
  for (const auto& name : netns::list()) {
    const std::string m = loopback_mark(links_of(name));
    if (m == own || m.rfind(own + " ", 0) == 0) out.push_back(name);
  }
  return out;
}

}  // namespace ebpfnet::marks
