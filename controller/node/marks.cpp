#include "marks.hpp"

#include <optional>

#include "ebpfnet/error.hpp"
#include "ebpfnet/netlink.hpp"

namespace ebpfnet::marks {
namespace {

// The namespace's links; nothing when it cannot be entered: gone meanwhile,
// or a name another process is making or removing this moment (the file
// under /run/netns exists, not yet or no longer a namespace).
std::optional<std::vector<Link>> links_of(std::string_view name) {
  try {
    return Netlink::in(Netns::open_named(name)).links();
  } catch (const Error&) {
    return std::nullopt;
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
  const auto links = links_of(name);
  // Not a namespace (yet): the placeholder file of one killed while being made.
  if (!links) return fresh_too;
  const std::string found = loopback_mark(*links);
  if (!found.empty()) return found == mark;
  return fresh_too && links->size() == 1;
}

std::vector<std::string> netns_of(const Node& node) {
  const std::string own = of(node);
  std::vector<std::string> out;
  for (const auto& name : netns::list()) {
    const auto links = links_of(name);
    const std::string m = links ? loopback_mark(*links) : "";
    if (m == own || m.rfind(own + " ", 0) == 0) out.push_back(name);
  }
  return out;
}

}  // namespace ebpfnet::marks
