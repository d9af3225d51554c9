#include "ebpfnet/netlink.hpp"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <vector>

#include "ebpfnet/error.hpp"

namespace ebpfnet {
namespace {

// Requests are small; dump replies can be large.
constexpr size_t kRequestSize = 8192;
constexpr size_t kReceiveSize = 32768;

nlmsghdr* put_header(char* buf, uint16_t type, uint16_t flags, uint32_t seq) {
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = type;
  nlh->nlmsg_flags = NLM_F_REQUEST | flags;
  nlh->nlmsg_seq = seq;
  return nlh;
}

ifinfomsg* put_ifinfo(nlmsghdr* nlh, int ifindex) {
  auto* ifi = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
  ifi->ifi_family = AF_UNSPEC;
  ifi->ifi_index = ifindex;
  return ifi;
}

void put_ipv4(nlmsghdr* nlh, uint16_t type, Ipv4 a) { mnl_attr_put_u32(nlh, type, a.be()); }

Ipv4 get_ipv4(const nlattr* attr) { return Ipv4::from_be(mnl_attr_get_u32(attr)); }

Mac get_mac(const nlattr* attr) {
  Mac m{};
  if (mnl_attr_get_payload_len(attr) == m.size())
    std::memcpy(m.data(), mnl_attr_get_payload(attr), m.size());
  return m;
}

// Collects the attributes of one message into a table indexed by type.
struct AttrTable {
  std::vector<const nlattr*> at;
  explicit AttrTable(size_t max) : at(max + 1, nullptr) {}
  const nlattr* operator[](size_t type) const { return type < at.size() ? at[type] : nullptr; }
};

int collect_attr(const nlattr* attr, void* data) {
  auto* t = static_cast<AttrTable*>(data);
  uint16_t type = mnl_attr_get_type(attr);
  if (type < t->at.size()) t->at[type] = attr;
  return MNL_CB_OK;
}

Link parse_link(const nlmsghdr* nlh) {
  auto* ifi = static_cast<const ifinfomsg*>(mnl_nlmsg_get_payload(nlh));
  AttrTable tb(IFLA_MAX);
  mnl_attr_parse(nlh, sizeof(*ifi), collect_attr, &tb);
  Link l;
  l.ifindex = ifi->ifi_index;
  l.up = (ifi->ifi_flags & IFF_UP) != 0;
  if (tb[IFLA_IFNAME]) l.name = mnl_attr_get_str(tb[IFLA_IFNAME]);
  if (tb[IFLA_ADDRESS]) l.mac = get_mac(tb[IFLA_ADDRESS]);
  if (tb[IFLA_IFALIAS]) l.alias = mnl_attr_get_str(tb[IFLA_IFALIAS]);
  if (tb[IFLA_LINKINFO]) {
    AttrTable info(IFLA_INFO_MAX);
    mnl_attr_parse_nested(tb[IFLA_LINKINFO], collect_attr, &info);
    if (info[IFLA_INFO_KIND]) l.kind = mnl_attr_get_str(info[IFLA_INFO_KIND]);
  }
  return l;
}

}  // namespace

namespace nlmsg {

nlmsghdr* new_veth(char* buf, uint32_t seq, const VethSpec& spec) {
  nlmsghdr* nlh = put_header(buf, RTM_NEWLINK, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, seq);
  put_ifinfo(nlh, 0);
  mnl_attr_put_strz(nlh, IFLA_IFNAME, spec.name.c_str());
  mnl_attr_put(nlh, IFLA_ADDRESS, spec.mac.size(), spec.mac.data());
  nlattr* linkinfo = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
  mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "veth");
  nlattr* data = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
  nlattr* peer = mnl_attr_nest_start(nlh, VETH_INFO_PEER);
  // The peer's attributes follow an ifinfomsg of their own.
  auto* pifi = static_cast<ifinfomsg*>(mnl_nlmsg_get_payload_tail(nlh));
  std::memset(pifi, 0, sizeof(*pifi));
  nlh->nlmsg_len += MNL_ALIGN(sizeof(*pifi));
  mnl_attr_put_strz(nlh, IFLA_IFNAME, spec.peer_name.c_str());
  mnl_attr_put(nlh, IFLA_ADDRESS, spec.peer_mac.size(), spec.peer_mac.data());
  if (spec.peer_ns_fd >= 0) mnl_attr_put_u32(nlh, IFLA_NET_NS_FD, spec.peer_ns_fd);
  mnl_attr_nest_end(nlh, peer);
  mnl_attr_nest_end(nlh, data);
  mnl_attr_nest_end(nlh, linkinfo);
  return nlh;
}

nlmsghdr* new_vxlan(char* buf, uint32_t seq, const VxlanSpec& spec) {
  nlmsghdr* nlh = put_header(buf, RTM_NEWLINK, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, seq);
  put_ifinfo(nlh, 0);
  mnl_attr_put_strz(nlh, IFLA_IFNAME, spec.name.c_str());
  if (spec.mtu) mnl_attr_put_u32(nlh, IFLA_MTU, static_cast<uint32_t>(spec.mtu));
  nlattr* linkinfo = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
  mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "vxlan");
  nlattr* data = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
  mnl_attr_put_u8(nlh, IFLA_VXLAN_COLLECT_METADATA, 1);
  mnl_attr_put_u8(nlh, IFLA_VXLAN_LEARNING, 0);
  mnl_attr_put_u16(nlh, IFLA_VXLAN_PORT, htons(spec.port));
  mnl_attr_nest_end(nlh, data);
  mnl_attr_nest_end(nlh, linkinfo);
  return nlh;
}

nlmsghdr* del_link(char* buf, uint32_t seq, int ifindex) {
  nlmsghdr* nlh = put_header(buf, RTM_DELLINK, NLM_F_ACK, seq);
  put_ifinfo(nlh, ifindex);
  return nlh;
}

nlmsghdr* set_link_up(char* buf, uint32_t seq, int ifindex, bool up) {
  nlmsghdr* nlh = put_header(buf, RTM_NEWLINK, NLM_F_ACK, seq);
  ifinfomsg* ifi = put_ifinfo(nlh, ifindex);
  ifi->ifi_change = IFF_UP;
  ifi->ifi_flags = up ? IFF_UP : 0;
  return nlh;
}

nlmsghdr* set_alias(char* buf, uint32_t seq, int ifindex, const std::string& alias) {
  nlmsghdr* nlh = put_header(buf, RTM_NEWLINK, NLM_F_ACK, seq);
  put_ifinfo(nlh, ifindex);
  mnl_attr_put_strz(nlh, IFLA_IFALIAS, alias.c_str());
  return nlh;
}

nlmsghdr* no_ipv6_addresses(char* buf, uint32_t seq, int ifindex) {
  nlmsghdr* nlh = put_header(buf, RTM_NEWLINK, NLM_F_ACK, seq);
  put_ifinfo(nlh, ifindex);
  nlattr* af = mnl_attr_nest_start(nlh, IFLA_AF_SPEC);
  nlattr* inet6 = mnl_attr_nest_start(nlh, AF_INET6);
  mnl_attr_put_u8(nlh, IFLA_INET6_ADDR_GEN_MODE, IN6_ADDR_GEN_MODE_NONE);
  mnl_attr_nest_end(nlh, inet6);
  mnl_attr_nest_end(nlh, af);
  return nlh;
}

// The header of an address add or delete, for either family.
ifaddrmsg* put_address_header(nlmsghdr*& nlh, char* buf, uint32_t seq, uint8_t family, uint8_t prefix, bool add) {
  nlh = put_header(buf, add ? RTM_NEWADDR : RTM_DELADDR, NLM_F_ACK | (add ? NLM_F_CREATE | NLM_F_EXCL : 0), seq);
  auto* ifa = static_cast<ifaddrmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifaddrmsg)));
  ifa->ifa_family = family;
  ifa->ifa_prefixlen = prefix;
  return ifa;
}

// The header of a static main-table unicast route add or delete, either family.
rtmsg* put_route_header(nlmsghdr*& nlh, char* buf, uint32_t seq, uint8_t family, uint8_t dst_len, bool add) {
  nlh = put_header(buf, add ? RTM_NEWROUTE : RTM_DELROUTE, NLM_F_ACK | (add ? NLM_F_CREATE | NLM_F_EXCL : 0), seq);
  auto* rtm = static_cast<rtmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(rtmsg)));
  rtm->rtm_family = family;
  rtm->rtm_dst_len = dst_len;
  rtm->rtm_table = RT_TABLE_MAIN;
  rtm->rtm_protocol = add ? RTPROT_STATIC : RTPROT_UNSPEC;
  rtm->rtm_type = RTN_UNICAST;
  return rtm;
}

nlmsghdr* address(char* buf, uint32_t seq, const Address& a, bool add) {
  nlmsghdr* nlh;
  ifaddrmsg* ifa = put_address_header(nlh, buf, seq, AF_INET, a.prefix, add);
  ifa->ifa_scope = RT_SCOPE_UNIVERSE;
  ifa->ifa_index = a.ifindex;
  put_ipv4(nlh, IFA_LOCAL, a.ip);
  put_ipv4(nlh, IFA_ADDRESS, a.ip);
  return nlh;
}

nlmsghdr* route(char* buf, uint32_t seq, const Route& r, bool add) {
  nlmsghdr* nlh;
  rtmsg* rtm = put_route_header(nlh, buf, seq, AF_INET, r.dst.prefix, add);
  // On delete, RT_SCOPE_NOWHERE matches a route of any scope.
  rtm->rtm_scope = !add ? RT_SCOPE_NOWHERE : r.link_scope ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE;
  if (r.dst.prefix > 0) put_ipv4(nlh, RTA_DST, r.dst.network);
  if (r.via) put_ipv4(nlh, RTA_GATEWAY, *r.via);
  if (r.oif) mnl_attr_put_u32(nlh, RTA_OIF, r.oif);
  if (r.src) put_ipv4(nlh, RTA_PREFSRC, *r.src);
  return nlh;
}

nlmsghdr* neighbor(char* buf, uint32_t seq, const Neighbor& n, bool add) {
  nlmsghdr* nlh = put_header(buf, add ? RTM_NEWNEIGH : RTM_DELNEIGH,
                             NLM_F_ACK | (add ? NLM_F_CREATE | NLM_F_REPLACE : 0), seq);
  auto* ndm = static_cast<ndmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ndmsg)));
  ndm->ndm_family = AF_INET;
  ndm->ndm_ifindex = n.ifindex;
  ndm->ndm_state = NUD_PERMANENT;
  ndm->ndm_type = RTN_UNICAST;
  put_ipv4(nlh, NDA_DST, n.ip);
  if (add) mnl_attr_put(nlh, NDA_LLADDR, n.mac.size(), n.mac.data());
  return nlh;
}

nlmsghdr* address6(char* buf, uint32_t seq, const Address6& a, bool add) {
  nlmsghdr* nlh;
  ifaddrmsg* ifa = put_address_header(nlh, buf, seq, AF_INET6, a.prefix, add);
  const auto& b = a.ip.bytes();
  const bool link_local = b[0] == 0xfe && (b[1] & 0xc0) == 0x80;
  ifa->ifa_scope = link_local ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE;
  ifa->ifa_index = a.ifindex;
  ifa->ifa_flags = IFA_F_NODAD;
  mnl_attr_put(nlh, IFA_LOCAL, b.size(), b.data());
  mnl_attr_put(nlh, IFA_ADDRESS, b.size(), b.data());
  // IFA_FLAGS also carries NOPREFIXROUTE: a link-local gateway on every
  // veth would otherwise add one fe80::/64 route per veth to the node.
  mnl_attr_put_u32(nlh, IFA_FLAGS, IFA_F_NODAD | (link_local ? IFA_F_NOPREFIXROUTE : 0));
  return nlh;
}

nlmsghdr* route6(char* buf, uint32_t seq, const Route6& r, bool add) {
  nlmsghdr* nlh;
  rtmsg* rtm = put_route_header(nlh, buf, seq, AF_INET6, r.dst.prefix, add);
  rtm->rtm_scope = RT_SCOPE_UNIVERSE;  // IPv6 routes carry no scope
  if (r.dst.prefix > 0) mnl_attr_put(nlh, RTA_DST, 16, r.dst.network.bytes().data());
  if (r.via) mnl_attr_put(nlh, RTA_GATEWAY, 16, r.via->bytes().data());
  if (r.oif) mnl_attr_put_u32(nlh, RTA_OIF, r.oif);
  return nlh;
}

nlmsghdr* neighbor6(char* buf, uint32_t seq, const Neighbor6& n, bool add) {
  nlmsghdr* nlh = put_header(buf, add ? RTM_NEWNEIGH : RTM_DELNEIGH,
                             NLM_F_ACK | (add ? NLM_F_CREATE | NLM_F_REPLACE : 0), seq);
  auto* ndm = static_cast<ndmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ndmsg)));
  ndm->ndm_family = AF_INET6;
  ndm->ndm_ifindex = n.ifindex;
  ndm->ndm_state = NUD_PERMANENT;
  ndm->ndm_type = RTN_UNICAST;
  mnl_attr_put(nlh, NDA_DST, 16, n.ip.bytes().data());
  if (add) mnl_attr_put(nlh, NDA_LLADDR, n.mac.size(), n.mac.data());
  return nlh;
}

}  // namespace nlmsg

Netlink::Netlink() {
  sock_ = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
  if (!sock_) throw_errno(errno, "opening a netlink socket");
  if (mnl_socket_bind(sock_, 0, MNL_SOCKET_AUTOPID) < 0) {
    int err = errno;
    mnl_socket_close(sock_);
    throw_errno(err, "binding a netlink socket");
  }
  portid_ = mnl_socket_get_portid(sock_);
  seq_ = static_cast<uint32_t>(time(nullptr));
}

Netlink Netlink::in(const Netns& ns) {
  NetnsGuard guard(ns);
  return Netlink();
}

Netlink::Netlink(Netlink&& o) noexcept : sock_(o.sock_), portid_(o.portid_), seq_(o.seq_) {
  o.sock_ = nullptr;
}

Netlink::~Netlink() {
  if (sock_) mnl_socket_close(sock_);
}

void Netlink::request(nlmsghdr* nlh, const std::string& context) {
  if (mnl_socket_sendto(sock_, nlh, nlh->nlmsg_len) < 0) throw_errno(errno, context);
  std::vector<char> buf(kReceiveSize);
  for (;;) {
    ssize_t n = mnl_socket_recvfrom(sock_, buf.data(), buf.size());
    if (n < 0) throw_errno(errno, context);
    int rc = mnl_cb_run(buf.data(), n, nlh->nlmsg_seq, portid_, nullptr, nullptr);
    if (rc == MNL_CB_ERROR) throw_errno(errno, context);
    if (rc == MNL_CB_STOP) return;
  }
}

namespace {

// Whether the first n bytes of buf hold the end of a dump's reply.
bool holds_end(const std::vector<char>& buf, ssize_t n) {
  int left = static_cast<int>(n);
  for (auto* m = reinterpret_cast<const nlmsghdr*>(buf.data()); mnl_nlmsg_ok(m, left); m = mnl_nlmsg_next(m, &left))
    if (m->nlmsg_type == NLMSG_DONE || m->nlmsg_type == NLMSG_ERROR) return true;
  return false;
}

}  // namespace

template <typename F>
bool Netlink::dump_once(nlmsghdr* nlh, F& cb) {
  if (mnl_socket_sendto(sock_, nlh, nlh->nlmsg_len) < 0) throw_errno(errno, "netlink dump");
  std::vector<char> buf(kReceiveSize);
  auto trampoline = [](const nlmsghdr* m, void* data) -> int {
    (*static_cast<F*>(data))(m);
    return MNL_CB_OK;
  };
  bool interrupted = false;
  for (;;) {
    ssize_t n = mnl_socket_recvfrom(sock_, buf.data(), buf.size());
    if (n < 0) throw_errno(errno, "netlink dump");
    if (!interrupted) {
      int rc = mnl_cb_run(buf.data(), n, nlh->nlmsg_seq, portid_, trampoline, &cb);
      if (rc == MNL_CB_STOP) return true;
      if (rc == MNL_CB_OK) continue;
      if (errno != EINTR) throw_errno(errno, "netlink dump");
      // libmnl stops at the first message flagged NLM_F_DUMP_INTR; the rest
      // of the reply is read and dropped, up to its end (maybe in this buffer).
      interrupted = true;
    }
    if (holds_end(buf, n)) return false;
  }
}

template <typename F>
void Netlink::dump(nlmsghdr* nlh, F&& cb, const std::function<void()>& restart) {
  constexpr int kAttempts = 20;
  for (int attempt = 1;; ++attempt) {
    if (dump_once(nlh, cb)) return;
    if (attempt == kAttempts)
      throw Error(Errc::failed, "netlink dump: the table kept changing while it was read (" +
                                    std::to_string(kAttempts) + " attempts)");
    if (restart) restart();
    nlh->nlmsg_seq = ++seq_;
  }
}

std::vector<Link> Netlink::links(const std::string& kind) {
  char buf[kRequestSize];
  nlmsghdr* nlh = put_header(buf, RTM_GETLINK, NLM_F_DUMP, ++seq_);
  put_ifinfo(nlh, 0);
  if (!kind.empty()) {
    nlattr* linkinfo = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
    mnl_attr_put_strz(nlh, IFLA_INFO_KIND, kind.c_str());
    mnl_attr_nest_end(nlh, linkinfo);
  }
  std::vector<Link> out;
  dump(
      nlh,
      [&](const nlmsghdr* m) {
        Link l = parse_link(m);
        // The kernel filters only by kinds whose module is loaded.
        if (kind.empty() || l.kind == kind) out.push_back(std::move(l));
      },
      [&] { out.clear(); });
  return out;
}

std::optional<Link> Netlink::link(const std::string& name) {
  char buf[kRequestSize];
  // A single get answers with one message; the ack that follows ends the wait.
  nlmsghdr* nlh = put_header(buf, RTM_GETLINK, NLM_F_ACK, ++seq_);
  put_ifinfo(nlh, 0);
  mnl_attr_put_strz(nlh, IFLA_IFNAME, name.c_str());
  std::optional<Link> out;
  try {
    dump(nlh, [&](const nlmsghdr* m) { out = parse_link(m); });
  } catch (const Error& e) {
    if (e.code() == Errc::not_found) return std::nullopt;
    throw Error(e.code(), std::string("looking up link ") + name + ": " + e.what());
  }
  return out;
}

int Netlink::create_veth(const VethSpec& spec) {
  char buf[kRequestSize];
  request(nlmsg::new_veth(buf, ++seq_, spec), "creating veth " + spec.name);
  const int ifindex = ifindex_of(spec.name);
  if (!ifindex) throw Error(Errc::failed, "veth " + spec.name + " vanished after creation");
  return ifindex;
}

int Netlink::create_vxlan(const VxlanSpec& spec) {
  char buf[kRequestSize];
  request(nlmsg::new_vxlan(buf, ++seq_, spec), "creating vxlan device " + spec.name);
  const int ifindex = ifindex_of(spec.name);
  if (!ifindex) throw Error(Errc::failed, "vxlan device " + spec.name + " vanished after creation");
  return ifindex;
}

// The interface ioctls work on any socket, in the socket's namespace.
int Netlink::ifindex_of(const std::string& name) {
  ifreq ifr{};
  if (name.size() >= sizeof(ifr.ifr_name)) return 0;
  std::memcpy(ifr.ifr_name, name.data(), name.size());
  if (::ioctl(mnl_socket_get_fd(sock_), SIOCGIFINDEX, &ifr) != 0) {
    if (errno == ENODEV) return 0;
    throw_errno(errno, "looking up interface " + name);
  }
  return ifr.ifr_ifindex;
}

std::string Netlink::name_of(int ifindex) {
  ifreq ifr{};
  ifr.ifr_ifindex = ifindex;
  if (::ioctl(mnl_socket_get_fd(sock_), SIOCGIFNAME, &ifr) == 0) return ifr.ifr_name;
  if (errno == ENODEV) return "";
  throw_errno(errno, "looking up interface " + std::to_string(ifindex));
}

void Netlink::delete_link(int ifindex) {
  char buf[kRequestSize];
  request(nlmsg::del_link(buf, ++seq_, ifindex), "deleting link " + std::to_string(ifindex));
}

void Netlink::set_up(int ifindex, bool up) {
  char buf[kRequestSize];
  request(nlmsg::set_link_up(buf, ++seq_, ifindex, up),
          std::string("setting link ") + std::to_string(ifindex) + (up ? " up" : " down"));
}

void Netlink::set_alias(int ifindex, const std::string& alias) {
  char buf[kRequestSize];
  request(nlmsg::set_alias(buf, ++seq_, ifindex, alias), "setting the alias of link " + std::to_string(ifindex));
}

void Netlink::no_ipv6_addresses(int ifindex) {
  static const bool has_ipv6 = ::access("/proc/sys/net/ipv6", F_OK) == 0;
  if (!has_ipv6) return;  // a kernel without IPv6 has nothing to turn off
  char buf[kRequestSize];
  request(nlmsg::no_ipv6_addresses(buf, ++seq_, ifindex),
          "turning off IPv6 addresses of link " + std::to_string(ifindex));
}

void Netlink::add_address(const Address& a) {
  char buf[kRequestSize];
  request(nlmsg::address(buf, ++seq_, a, true),
          "adding address " + a.ip.str() + "/" + std::to_string(a.prefix));
}

void Netlink::del_address(const Address& a) {
  char buf[kRequestSize];
  request(nlmsg::address(buf, ++seq_, a, false),
          "deleting address " + a.ip.str() + "/" + std::to_string(a.prefix));
}

std::vector<Address> Netlink::addresses(int ifindex) {
  char buf[kRequestSize];
  nlmsghdr* nlh = put_header(buf, RTM_GETADDR, NLM_F_DUMP, ++seq_);
  auto* ifa = static_cast<ifaddrmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifaddrmsg)));
  ifa->ifa_family = AF_INET;
  std::vector<Address> out;
  dump(nlh, [&](const nlmsghdr* m) {
    auto* msg = static_cast<const ifaddrmsg*>(mnl_nlmsg_get_payload(m));
    if (msg->ifa_family != AF_INET || (ifindex && static_cast<int>(msg->ifa_index) != ifindex))
      return;
    AttrTable tb(IFA_MAX);
    mnl_attr_parse(m, sizeof(*msg), collect_attr, &tb);
    const nlattr* a = tb[IFA_LOCAL] ? tb[IFA_LOCAL] : tb[IFA_ADDRESS];
    if (a) out.push_back({static_cast<int>(msg->ifa_index), get_ipv4(a), msg->ifa_prefixlen});
  }, [&] { out.clear(); });
  return out;
}

void Netlink::add_route(const Route& r) {
  char buf[kRequestSize];
  request(nlmsg::route(buf, ++seq_, r, true), "adding route to " + r.dst.str());
}

void Netlink::del_route(const Route& r) {
  char buf[kRequestSize];
  request(nlmsg::route(buf, ++seq_, r, false), "deleting route to " + r.dst.str());
}

std::vector<Route> Netlink::routes(int oif) {
  char buf[kRequestSize];
  nlmsghdr* nlh = put_header(buf, RTM_GETROUTE, NLM_F_DUMP, ++seq_);
  auto* rtm = static_cast<rtmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(rtmsg)));
  rtm->rtm_family = AF_INET;
  std::vector<Route> out;
  dump(nlh, [&](const nlmsghdr* m) {
    auto* msg = static_cast<const rtmsg*>(mnl_nlmsg_get_payload(m));
    AttrTable tb(RTA_MAX);
    mnl_attr_parse(m, sizeof(*msg), collect_attr, &tb);
    uint32_t table = tb[RTA_TABLE] ? mnl_attr_get_u32(tb[RTA_TABLE]) : msg->rtm_table;
    if (msg->rtm_family != AF_INET || table != RT_TABLE_MAIN) return;
    Route r;
    r.dst.prefix = msg->rtm_dst_len;
    if (tb[RTA_DST]) r.dst.network = get_ipv4(tb[RTA_DST]);
    if (tb[RTA_GATEWAY]) r.via = get_ipv4(tb[RTA_GATEWAY]);
    if (tb[RTA_OIF]) r.oif = static_cast<int>(mnl_attr_get_u32(tb[RTA_OIF]));
    if (tb[RTA_PREFSRC]) r.src = get_ipv4(tb[RTA_PREFSRC]);
    r.link_scope = msg->rtm_scope == RT_SCOPE_LINK;
    if (!oif || r.oif == oif) out.push_back(r);
  }, [&] { out.clear(); });
  return out;
}

void Netlink::add_neighbor(const Neighbor& n) {
  char buf[kRequestSize];
  request(nlmsg::neighbor(buf, ++seq_, n, true), "adding neighbour " + n.ip.str());
}

void Netlink::del_neighbor(const Neighbor& n) {
  char buf[kRequestSize];
  request(nlmsg::neighbor(buf, ++seq_, n, false), "deleting neighbour " + n.ip.str());
}

void Netlink::add_address6(const Address6& a) {
  char buf[kRequestSize];
  request(nlmsg::address6(buf, ++seq_, a, true), "adding address " + a.ip.str() + "/" + std::to_string(a.prefix));
}

std::vector<Address6> Netlink::addresses6(int ifindex) {
  char buf[kRequestSize];
  nlmsghdr* nlh = put_header(buf, RTM_GETADDR, NLM_F_DUMP, ++seq_);
  auto* ifa = static_cast<ifaddrmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifaddrmsg)));
  ifa->ifa_family = AF_INET6;
  std::vector<Address6> out;
  dump(nlh, [&](const nlmsghdr* m) {
    auto* msg = static_cast<const ifaddrmsg*>(mnl_nlmsg_get_payload(m));
    if (msg->ifa_family != AF_INET6 || (ifindex && static_cast<int>(msg->ifa_index) != ifindex)) return;
    AttrTable tb(IFA_MAX);
    mnl_attr_parse(m, sizeof(*msg), collect_attr, &tb);
    const nlattr* a = tb[IFA_LOCAL] ? tb[IFA_LOCAL] : tb[IFA_ADDRESS];
    if (!a || mnl_attr_get_payload_len(a) != 16) return;
    Ipv6::Bytes b{};
    std::memcpy(b.data(), mnl_attr_get_payload(a), 16);
    out.push_back({static_cast<int>(msg->ifa_index), Ipv6(b), msg->ifa_prefixlen});
  }, [&] { out.clear(); });
  return out;
}

void Netlink::add_route6(const Route6& r) {
  char buf[kRequestSize];
  request(nlmsg::route6(buf, ++seq_, r, true), "adding route to " + r.dst.str());
}

void Netlink::add_neighbor6(const Neighbor6& n) {
  char buf[kRequestSize];
  request(nlmsg::neighbor6(buf, ++seq_, n, true), "adding neighbour " + n.ip.str());
}

}  // namespace ebpfnet
