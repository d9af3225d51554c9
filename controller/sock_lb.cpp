#include "ebpfnet/sock_lb.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <fstream>
#include <optional>
#include <sstream>
#include <string_view>
#include <vector>

#include "ebpfnet/datapath.hpp"
#include "ebpfnet/error.hpp"
#include "ebpfnet/skeleton.hpp"
#include "sock_lb.skel.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71  // linux/socket.h of 5.14+; Debian 12's libc headers predate it
#endif

namespace ebpfnet::sock_lb {

std::optional<std::filesystem::path> cgroup_root() {
  std::ifstream mounts("/proc/self/mounts");
  std::optional<std::filesystem::path> found;
  for (std::string line; std::getline(mounts, line);) {
    std::istringstream f(line);
    std::string dev, dir, type;
    f >> dev >> dir >> type;
    if (type != "cgroup2") continue;
    if (dir == "/sys/fs/cgroup") return dir;
    if (!found) found = dir;
  }
  return found;
}

namespace {

// The programs of bpf/sock_lb.bpf.c; each one's link is pinned as <name>_link.
constexpr std::array<const char*, 4> kHooks{"sock_connect4", "sock_sendmsg4", "sock_recvmsg4", "sock_getpeer4"};

std::filesystem::path pin_of(const std::filesystem::path& pin_dir, std::string_view hook) {
  return pin_dir / (std::string(hook) + "_link");
}

}  // namespace

const std::string& unsupported_reason() {
  static const std::string reason = []() -> std::string {
    if (!cgroup_root()) return "no cgroup v2 hierarchy is mounted";
    if (libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, nullptr) != 1)
      return "the kernel has no cgroup socket address hooks";
    for (auto [fn, name] : {std::pair{BPF_FUNC_get_netns_cookie, "bpf_get_netns_cookie"},
                            std::pair{BPF_FUNC_set_retval, "bpf_set_retval"}})
      if (libbpf_probe_bpf_helper(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, fn, nullptr) != 1)
        return std::string("the kernel's socket hooks lack ") + name + " (Linux 5.18 has it)";
    return "";
  }();
  return reason;
}

bool attached(const std::filesystem::path& pin_dir) {
  for (const char* h : kHooks)
    if (!std::filesystem::exists(pin_of(pin_dir, h))) return false;
  return true;
}

void attach(const DatapathMaps& maps, const std::filesystem::path& pin_dir) {
  if (const std::string& why = unsupported_reason(); !why.empty())
    throw Error(Errc::environment, "connect-time balancing is unavailable: " + why);
  const auto root = cgroup_root();
  UniqueFd cgroup(::open(root->c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!cgroup.valid()) throw_errno(errno, "opening cgroup " + root->string());

  Skeleton<sock_lb_bpf> sk("sock_lb");
  share_maps(sk->obj, maps);
  sk.load();
  // New links this call pinned: removed again if a later one fails.
  std::vector<std::filesystem::path> made;
  try {
    for (const char* h : kHooks) {
      bpf_program* p = bpf_object__find_program_by_name(sk->obj, h);
      if (!p) throw Error(Errc::failed, std::string("the sock_lb object has no program ") + h);
      const auto pin = pin_of(pin_dir, h);
      if (UniqueFd link(bpf_obj_get(pin.c_str())); link.valid()) {
        if (bpf_link_update(link.get(), bpf_program__fd(p), nullptr) != 0)
          throw_errno(errno, "replacing the program of " + pin.string());
        continue;
      }
      UniqueFd link(bpf_link_create(bpf_program__fd(p), cgroup.get(), bpf_program__expected_attach_type(p), nullptr));
      if (!link.valid())
        throw_errno(errno, std::string("attaching ") + bpf_program__name(p) + " to cgroup " + root->string());
      if (bpf_obj_pin(link.get(), pin.c_str()) != 0) throw_errno(errno, "pinning " + pin.string());
      made.push_back(pin);
    }
  } catch (...) {
    for (const auto& pin : made) ::unlink(pin.c_str());
    throw;
  }
}

void detach(const std::filesystem::path& pin_dir) {
  for (const char* h : kHooks)
    if (const auto p = pin_of(pin_dir, h); ::unlink(p.c_str()) != 0 && errno != ENOENT)
      throw_errno(errno, "removing pin " + p.string());
}

uint64_t netns_cookie(const Netns& ns) {
  UniqueFd s;
  {
    NetnsGuard in(ns);
    s = UniqueFd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  }
  if (!s.valid()) throw_errno(errno, "opening a socket to learn a namespace's cookie");
  uint64_t cookie = 0;
  socklen_t len = sizeof cookie;
  if (::getsockopt(s.get(), SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len) != 0)
    throw_errno(errno, "reading a namespace's cookie (SO_NETNS_COOKIE needs Linux 5.14)");
  return cookie;
}

}  // namespace ebpfnet::sock_lb
