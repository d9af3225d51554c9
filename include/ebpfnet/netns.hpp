// Network namespaces: handles, entering and leaving, and the named
// namespaces of iproute2 (bind mounts under /run/netns), compatible both ways.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>
#include <vector>

#include "ebpfnet/fd.hpp"

namespace ebpfnet {

class Netns {
 public:
  static Netns current();  // of the calling thread
  static Netns open_path(const std::string& path);
  static Netns open_pid(pid_t pid);
  static Netns open_named(std::string_view name);
  // A name under /run/netns, a path (contains '/'), or "pid:N".
  static Netns open_spec(const std::string& spec);

  int fd() const { return fd_.get(); }
  // Two handles name the same namespace when device and inode agree.
  bool same_as(const Netns& other) const;

 private:
  explicit Netns(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

// Moves the calling thread into a namespace and back when it goes out of scope.
class NetnsGuard {
 public:
  explicit NetnsGuard(const Netns& target);
  ~NetnsGuard();
  NetnsGuard(const NetnsGuard&) = delete;
  NetnsGuard& operator=(const NetnsGuard&) = delete;

 private:
  Netns saved_;
};

namespace netns {

inline constexpr const char* kRunDir = "/run/netns";

std::string path_of(std::string_view name);
bool exists(std::string_view name);
// Creates a named namespace with loopback down, as `ip netns add` does.
void add(std::string_view name);
// Removes a named namespace; its devices go when the last user leaves.
void del(std::string_view name);
std::vector<std::string> list();
// The names under /run/netns that refer to the namespace of pid.
std::vector<std::string> identify(pid_t pid);
// Runs argv inside the namespace the way `ip netns exec` does: its own mount
// namespace with /sys showing the namespace's devices and /etc/netns/NAME
// files bound over /etc. Returns only by throwing.
[[noreturn]] void exec(std::string_view name, const std::vector<std::string>& argv);

// Writes /proc/sys/<key> as seen from inside ns (key like "net/ipv4/ip_forward").
void write_sysctl(const Netns& ns, std::string_view key, std::string_view value);

}  // namespace netns
}  // namespace ebpfnet
