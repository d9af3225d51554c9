// rtnetlink over libmnl, as typed values: links, veth pairs, addresses,
// routes and neighbours. A socket belongs to the namespace it was opened in,
// so Netlink::in(ns) speaks to that namespace whatever the caller's is.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "ebpfnet/ipv4.hpp"
#include "ebpfnet/ipv6.hpp"
#include "ebpfnet/netns.hpp"

struct mnl_socket;
struct nlmsghdr;

namespace ebpfnet {

struct Link {
  int ifindex = 0;
  std::string name;
  std::string kind;  // "veth", "bridge", ... ("" when the kernel gives none)
  Mac mac{};
  bool up = false;
  std::string alias;  // IFLA_IFALIAS: ebpfnet marks what it made with it
};

struct VethSpec {
  std::string name;       // this side, created in the socket's namespace
  Mac mac{};
  std::string peer_name;  // the other side, created straight in peer_ns
  Mac peer_mac{};
  int peer_ns_fd = -1;
};

// A collect_md ("external") vxlan device: the tunnel's remote and VNI come
// with each packet (from BPF), none is configured; no learning.
struct VxlanSpec {
  std::string name;
  uint16_t port = 4789;  // UDP destination port, also the one it listens on
  int mtu = 0;           // 0: the kernel's default (without a lower device: 1500)
};

struct Address {
  int ifindex = 0;
  Ipv4 ip;
  int prefix = 32;
};

struct Route {
  Ipv4Cidr dst;                // 0.0.0.0/0 for the default route
  std::optional<Ipv4> via;     // gateway
  int oif = 0;
  std::optional<Ipv4> src;     // preferred source
  bool link_scope = false;     // a directly reachable destination (scope link)
};

struct Neighbor {
  int ifindex = 0;
  Ipv4 ip;
  Mac mac{};
};

// IPv6 counterparts, for dual-stack endpoints. Addresses are added with
// IFA_F_NODAD: an endpoint's address is unique by IPAM, and duplicate
// address detection would hold back its first packets for a second.
struct Address6 {
  int ifindex = 0;
  Ipv6 ip;
  int prefix = 128;
};

struct Route6 {
  Ipv6Cidr dst;              // ::/0 for the default route
  std::optional<Ipv6> via;   // gateway
  int oif = 0;
};

struct Neighbor6 {
  int ifindex = 0;
  Ipv6 ip;
  Mac mac{};
};

// Message encoders, kept apart from the socket so they are unit-tested
// without root. Each writes one request into buf and returns its header.
namespace nlmsg {
nlmsghdr* new_veth(char* buf, uint32_t seq, const VethSpec& spec);
nlmsghdr* new_vxlan(char* buf, uint32_t seq, const VxlanSpec& spec);
nlmsghdr* del_link(char* buf, uint32_t seq, int ifindex);
nlmsghdr* set_link_up(char* buf, uint32_t seq, int ifindex, bool up);
nlmsghdr* set_alias(char* buf, uint32_t seq, int ifindex, const std::string& alias);
nlmsghdr* no_ipv6_addresses(char* buf, uint32_t seq, int ifindex);
nlmsghdr* address(char* buf, uint32_t seq, const Address& a, bool add);
nlmsghdr* route(char* buf, uint32_t seq, const Route& r, bool add);
nlmsghdr* neighbor(char* buf, uint32_t seq, const Neighbor& n, bool add);
nlmsghdr* address6(char* buf, uint32_t seq, const Address6& a, bool add);
nlmsghdr* route6(char* buf, uint32_t seq, const Route6& r, bool add);
nlmsghdr* neighbor6(char* buf, uint32_t seq, const Neighbor6& n, bool add);
}  // namespace nlmsg

class Netlink {
 public:
  Netlink();                     // in the calling thread's namespace
  static Netlink in(const Netns& ns);
  Netlink(Netlink&& o) noexcept;
  Netlink& operator=(Netlink&&) = delete;
  Netlink(const Netlink&) = delete;
  ~Netlink();

  // kind: only links of that kind ("bridge"), filtered by the kernel. A
  // dump of every link of a node costs the kernel O(endpoints) per veth
  // (naming a veth's peer namespace walks the node's namespace ids).
  std::vector<Link> links(const std::string& kind = "");
  std::optional<Link> link(const std::string& name);

  // Returns this side's ifindex.
  int create_veth(const VethSpec& spec);
  int create_vxlan(const VxlanSpec& spec);
  // By ioctl, O(1) in the kernel: for a veth, a netlink answer also names
  // the peer's namespace, which costs a walk of the node's namespace ids.
  int ifindex_of(const std::string& name);  // 0: no such link
  std::string name_of(int ifindex);  // "": no such link
  void delete_link(int ifindex);
  void set_up(int ifindex, bool up = true);
  // The kernel takes an alias only on an existing link, not with its creation.
  void set_alias(int ifindex, const std::string& alias);
  // No IPv6 address (not even link-local) on the link, so it sends no DAD,
  // router solicitation or MLD report; before the link goes up. Through
  // netlink, not /proc/sys: every endpoint namespace has an eth0, and the
  // dentries of all their conf/eth0 share one hash chain, which makes a
  // sysctl path lookup cost O(endpoints).
  void no_ipv6_addresses(int ifindex);

  void add_address(const Address& a);
  void del_address(const Address& a);
  std::vector<Address> addresses(int ifindex = 0);

  void add_route(const Route& r);
  void del_route(const Route& r);
  std::vector<Route> routes(int oif = 0);  // main table, IPv4

  void add_neighbor(const Neighbor& n);  // permanent
  void del_neighbor(const Neighbor& n);

  void add_address6(const Address6& a);
  std::vector<Address6> addresses6(int ifindex = 0);  // global and link-local
  void add_route6(const Route6& r);
  void add_neighbor6(const Neighbor6& n);  // permanent

 private:
  // Sends one request and waits for its ack; throws "context: strerror".
  void request(nlmsghdr* nlh, const std::string& context);
  // Sends a dump request and calls cb for every message of the reply. A
  // dump the kernel marks interrupted (the table changed while it was read)
  // is asked again after restart(), which drops what cb gathered.
  template <typename F>
  void dump(nlmsghdr* nlh, F&& cb, const std::function<void()>& restart = {});
  // One pass: false when the kernel marked it interrupted (then read to its end).
  template <typename F>
  bool dump_once(nlmsghdr* nlh, F& cb);

  mnl_socket* sock_ = nullptr;
  uint32_t portid_ = 0;
  uint32_t seq_ = 0;
};

}  // namespace ebpfnet
