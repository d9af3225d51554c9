#include "bench/prefilter.hpp"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <thread>

#include "ebpfnet/error.hpp"
#include "ebpfnet/netlink.hpp"
#include "ebpfnet/netns.hpp"
#include "ebpfnet/node.hpp"
#include "ebpfnet/skeleton.hpp"
#include "tc_prefilter.skel.h"

namespace ebpfnet::bench {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kBpfTcxIngress = 46;  // linux/bpf.h of 6.6+ (as controller/tc_attach.cpp)
constexpr size_t kFrameLen = 64;
constexpr unsigned kBatch = 64;

uint16_t ip_checksum(const uint8_t* p, size_t n) {
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < n; i += 2) sum += uint32_t(p[i]) << 8 | p[i + 1];
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

// A 64-byte Ethernet/IPv4/UDP frame from src to dst.
std::array<uint8_t, kFrameLen> udp_frame(const std::array<uint8_t, 6>& smac, const std::array<uint8_t, 6>& dmac,
                                         Ipv4 src, Ipv4 dst) {
  std::array<uint8_t, kFrameLen> f{};
  std::memcpy(&f[0], dmac.data(), 6);
  std::memcpy(&f[6], smac.data(), 6);
  f[12] = 0x08;
  f[13] = 0x00;
  uint8_t* ip = &f[14];
  const uint16_t total = kFrameLen - 14;
  ip[0] = 0x45;
  ip[2] = total >> 8;
  ip[3] = total & 0xff;
  ip[6] = 0x40;  // don't fragment
  ip[8] = 64;
  ip[9] = 17;  // UDP
  const uint32_t s = src.be(), d = dst.be();
  std::memcpy(ip + 12, &s, 4);
  std::memcpy(ip + 16, &d, 4);
  const uint16_t c = ip_checksum(ip, 20);
  ip[10] = c >> 8;
  ip[11] = c & 0xff;
  uint8_t* udp = ip + 20;
  udp[0] = 0x9c;  // 40000
  udp[1] = 0x40;
  udp[2] = 0x14;  // 5301
  udp[3] = 0xb5;
  const uint16_t ulen = total - 20;
  udp[4] = ulen >> 8;
  udp[5] = ulen & 0xff;  // checksum 0: none
  return f;
}

Ipv4 ip(const char* s) { return *Ipv4::parse(s); }

}  // namespace

std::string to_string(DropHook h) {
  switch (h) {
    case DropHook::xdp: return "xdp";
    case DropHook::xdp_generic: return "xdp-generic";
    case DropHook::tc: break;
  }
  return "tc";
}

PrefilterBench::PrefilterBench(const std::string& prefix, int entries) {
  out_ns_ = prefix + "pf-o";
  node_ns_ = prefix + "pf-n";
  try {
    for (const auto& ns : {out_ns_, node_ns_}) {
      netns::add(ns);
      made_.push_back(ns);
    }
    const Netns out = Netns::open_named(out_ns_), node = Netns::open_named(node_ns_);
    for (const auto* n : {&out, &node}) {
      netns::write_sysctl(*n, "net/ipv6/conf/all/disable_ipv6", "1");
      netns::write_sysctl(*n, "net/ipv6/conf/default/disable_ipv6", "1");
    }
    node_mac_ = {0x02, 0x09, 0, 0, 0, 0x02};
    out_mac_ = {0x02, 0x09, 0, 0, 0, 0x01};
    Netlink nl = Netlink::in(node);
    ifindex_ = nl.create_veth({"eth0", node_mac_, "eth0", out_mac_, out.fd()});
    nl.add_address({ifindex_, ip("10.209.0.2"), 24});
    nl.set_up(ifindex_);
    nl.set_up(nl.link("lo").value().ifindex);
    Netlink nl_out = Netlink::in(out);
    out_ifindex_ = nl_out.link("eth0").value().ifindex;
    nl_out.add_address({out_ifindex_, ip("10.209.0.1"), 24});
    nl_out.set_up(out_ifindex_);

    // The product's programs and maps; the deny list as `prefilter add` writes it.
    dp_ = std::make_unique<Datapath>(Datapath::load({ip("10.209.0.1"), 1024}));
    dp_->maps().put_prefilter(*Ipv4Cidr::parse(kDenied));
    for (int i = 1; i < entries; ++i) {
      // Never matching: /24s and /32s of 172.16.0.0/12.
      const uint32_t base = (172u << 24) | (16u << 16);
      if (i % 2)
        dp_->maps().put_prefilter({Ipv4(base + (uint32_t(i / 2) << 8)), 24});
      else
        dp_->maps().put_prefilter({Ipv4(base + (1u << 19) + uint32_t(i)), 32});
    }
    Skeleton<tc_prefilter_bpf> tc("tc_prefilter");
    for (size_t i = 0; i < kMapNames.size(); ++i) {
      bpf_map* m = bpf_object__find_map_by_name(tc->obj, kMapNames[i]);
      if (!m || bpf_map__reuse_fd(m, dp_->maps().fd(i)) != 0)
        throw std::runtime_error(std::string("tc_prefilter: sharing map ") + kMapNames[i]);
    }
    tc.load();
    tc_prog_ = UniqueFd(fcntl(bpf_program__fd(tc->progs.tc_prefilter), F_DUPFD_CLOEXEC, 0));
  } catch (...) {
    teardown();
    throw;
  }
}

PrefilterBench::~PrefilterBench() { teardown(); }

void PrefilterBench::teardown() {
  tc_prog_ = UniqueFd();
  dp_.reset();
  for (auto it = made_.rbegin(); it != made_.rend(); ++it) {
    try {
      if (netns::exists(*it)) netns::del(*it);
    } catch (...) {
    }
  }
  made_.clear();
}

DropSample PrefilterBench::run(DropHook hook, int cpu, double seconds) {
  DropSample s;
  UniqueFd link;
  {
    const Netns node = Netns::open_named(node_ns_);
    NetnsGuard in(node);
    if (hook != DropHook::tc) {
      std::vector<__u32> modes = {XDP_FLAGS_SKB_MODE};
      if (hook == DropHook::xdp) modes.insert(modes.begin(), XDP_FLAGS_DRV_MODE);
      for (__u32 flags : modes) {
        LIBBPF_OPTS(bpf_link_create_opts, opts, .flags = flags);
        link = UniqueFd(bpf_link_create(dp_->uplink_prefilter_fd(), ifindex_, BPF_XDP, &opts));
        if (link.valid()) {
          s.xdp_mode = flags == XDP_FLAGS_DRV_MODE ? "native" : "generic";
          break;
        }
      }
    } else {
      link = UniqueFd(bpf_link_create(tc_prog_.get(), ifindex_, static_cast<bpf_attach_type>(kBpfTcxIngress), nullptr));
    }
    if (!link.valid())
      throw std::runtime_error("attaching the " + to_string(hook) + " prefilter: " + std::strerror(errno));
  }
  const Ipv4Cidr denied = *Ipv4Cidr::parse(kDenied);
  const uint64_t before = dp_->maps().prefilter_count(denied).packets;
  std::string error;
  std::thread sender([&] {
    try {
      const Netns out = Netns::open_named(out_ns_);
      NetnsGuard in(out);
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(cpu, &set);
      if (sched_setaffinity(0, sizeof set, &set) != 0) throw_errno(errno, "pinning the sender to CPU " + std::to_string(cpu));
      UniqueFd fd(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0));  // protocol 0: sends only
      if (!fd.valid()) throw_errno(errno, "AF_PACKET socket");
      int one = 1;
      setsockopt(fd.get(), SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one);
      sockaddr_ll sll{};
      sll.sll_family = AF_PACKET;
      sll.sll_ifindex = out_ifindex_;
      if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&sll), sizeof sll) != 0) throw_errno(errno, "binding AF_PACKET");
      auto frame = udp_frame(out_mac_, node_mac_, ip(kSource), ip("10.209.0.2"));
      iovec iov{frame.data(), frame.size()};
      std::array<mmsghdr, kBatch> msgs{};
      for (auto& m : msgs) {
        m.msg_hdr.msg_iov = &iov;
        m.msg_hdr.msg_iovlen = 1;
      }
      const auto start = Clock::now();
      const auto end = start + std::chrono::duration<double>(seconds);
      while (Clock::now() < end) {
        const int n = ::sendmmsg(fd.get(), msgs.data(), kBatch, 0);
        if (n < 0) {
          if (errno == ENOBUFS || errno == EAGAIN || errno == EINTR) continue;
          throw_errno(errno, "sending");
        }
        s.sent += static_cast<uint64_t>(n);
      }
      s.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    } catch (const std::exception& e) {
      error = e.what();
    }
  });
  sender.join();
  link = UniqueFd();  // detached
  if (!error.empty()) throw std::runtime_error(error);
  s.dropped = dp_->maps().prefilter_count(denied).packets - before;
  return s;
}

}  // namespace ebpfnet::bench
