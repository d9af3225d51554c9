#include "ebpfnet/netns.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

#include "ebpfnet/error.hpp"
#include "ebpfnet/names.hpp"

namespace ebpfnet {

Netns Netns::current() { return open_path("/proc/thread-self/ns/net"); }

Netns Netns::open_path(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) throw_errno(errno, "opening network namespace " + path);
  struct stat st{};
  if (fstat(fd.get(), &st) == 0 && !S_ISREG(st.st_mode) && !S_ISCHR(st.st_mode))
    throw Error(Errc::usage, "opening network namespace " + path + ": not a namespace file");
  return Netns(std::move(fd));
}

Netns Netns::open_pid(pid_t pid) {
  if (pid <= 0) throw Error(Errc::usage, "process id " + std::to_string(pid) + " is not valid");
  std::string path = "/proc/" + std::to_string(pid) + "/ns/net";
  if (::access(("/proc/" + std::to_string(pid)).c_str(), F_OK) != 0)
    throw Error(Errc::not_found, "process " + std::to_string(pid) + " does not exist");
  return open_path(path);
}

Netns Netns::open_named(std::string_view name) {
  validate_name("namespace", name);
  if (!netns::exists(name))
    throw Error(Errc::not_found, "network namespace '" + std::string(name) + "' does not exist");
  return open_path(netns::path_of(name));
}

Netns Netns::open_spec(const std::string& spec) {
  if (spec.rfind("pid:", 0) == 0) {
    pid_t pid = 0;
    auto digits = std::string_view(spec).substr(4);
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), pid);
    if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size())
      throw Error(Errc::usage, "'" + spec + "' is not pid:NUMBER");
    return open_pid(pid);
  }
  if (spec.find('/') != std::string::npos) return open_path(spec);
  return open_named(spec);
}

bool Netns::same_as(const Netns& other) const {
  struct stat a{}, b{};
  return fstat(fd(), &a) == 0 && fstat(other.fd(), &b) == 0 && a.st_dev == b.st_dev &&
         a.st_ino == b.st_ino;
}

NetnsGuard::NetnsGuard(const Netns& target) : saved_(Netns::current()) {
  if (setns(target.fd(), CLONE_NEWNET) != 0) throw_errno(errno, "entering network namespace");
}

NetnsGuard::~NetnsGuard() {
  // Failing to return would leave the process in the wrong namespace for
  // everything that follows; there is no safe way on.
  if (setns(saved_.fd(), CLONE_NEWNET) != 0) std::abort();
}

namespace netns {
namespace {

// iproute2 makes /run/netns a shared mount point so that namespaces mounted
// later propagate to every mount namespace (ip netns exec makes its own).
void prepare_run_dir() {
  if (::mkdir(kRunDir, 0755) != 0 && errno != EEXIST) throw_errno(errno, "creating /run/netns");
  for (bool bound = false;; bound = true) {
    if (::mount("", kRunDir, "none", MS_SHARED | MS_REC, nullptr) == 0) return;
    if (errno != EINVAL || bound) throw_errno(errno, "making /run/netns a shared mount");
    if (::mount(kRunDir, kRunDir, "none", MS_BIND | MS_REC, nullptr) != 0)
      throw_errno(errno, "bind-mounting /run/netns");
  }
}

}  // namespace

std::string path_of(std::string_view name) { return std::string(kRunDir) + "/" + std::string(name); }

bool exists(std::string_view name) {
  struct stat st{};
  return ::stat(path_of(name).c_str(), &st) == 0;
}

void add(std::string_view name) {
  validate_name("namespace", name);
  std::string path = path_of(name);
  prepare_run_dir();
  int fd = ::open(path.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
  if (fd < 0) {
    if (errno == EEXIST)
      throw Error(Errc::exists, "network namespace '" + std::string(name) + "' already exists");
    throw_errno(errno, "creating " + path);
  }
  ::close(fd);
  Netns saved = Netns::current();
  int err = 0;
  if (unshare(CLONE_NEWNET) != 0) {
    err = errno;
  } else {
    if (::mount("/proc/thread-self/ns/net", path.c_str(), "none", MS_BIND, nullptr) != 0)
      err = errno;
    if (setns(saved.fd(), CLONE_NEWNET) != 0) std::abort();
  }
  if (err != 0) {
    ::unlink(path.c_str());
    throw_errno(err, "creating network namespace '" + std::string(name) + "'");
  }
}

void del(std::string_view name) {
  validate_name("namespace", name);
  std::string path = path_of(name);
  if (!exists(name))
    throw Error(Errc::not_found, "network namespace '" + std::string(name) + "' does not exist");
  if (::umount2(path.c_str(), MNT_DETACH) != 0 && errno != EINVAL)
    throw_errno(errno, "unmounting " + path);
  if (::unlink(path.c_str()) != 0) throw_errno(errno, "removing " + path);
}

std::vector<std::string> list() {
  std::vector<std::string> names;
  DIR* dir = ::opendir(kRunDir);
  if (!dir) return names;
  while (dirent* e = ::readdir(dir)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  ::closedir(dir);
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<std::string> identify(pid_t pid) {
  Netns target = Netns::open_pid(pid);
  std::vector<std::string> found;
  for (const auto& n : list()) {
    int fd = ::open(path_of(n).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    struct stat a{}, b{};
    bool same = fstat(fd, &a) == 0 && fstat(target.fd(), &b) == 0 && a.st_dev == b.st_dev &&
                a.st_ino == b.st_ino;
    ::close(fd);
    if (same) found.push_back(n);
  }
  return found;
}

namespace {

// /etc/netns/NAME/x is bound over /etc/x, as ip netns exec does.
void bind_etc(std::string_view name) {
  std::string dir = "/etc/netns/" + std::string(name);
  DIR* d = ::opendir(dir.c_str());
  if (!d) return;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n == "." || n == "..") continue;
    std::string src = dir + "/" + n, dst = "/etc/" + n;
    if (::mount(src.c_str(), dst.c_str(), "none", MS_BIND, nullptr) != 0)
      throw_errno(errno, "binding " + src + " over " + dst);
  }
  ::closedir(d);
}

}  // namespace

void exec(std::string_view name, const std::vector<std::string>& argv) {
  if (argv.empty()) throw Error(Errc::usage, "ns exec: no command given");
  Netns ns = Netns::open_named(name);
  if (setns(ns.fd(), CLONE_NEWNET) != 0)
    throw_errno(errno, "entering network namespace '" + std::string(name) + "'");
  if (unshare(CLONE_NEWNS) != 0) throw_errno(errno, "creating a mount namespace");
  // Keep our mounts from propagating back, then show this namespace's /sys.
  if (::mount("", "/", "none", MS_SLAVE | MS_REC, nullptr) != 0)
    throw_errno(errno, "making / a slave mount");
  if (::umount2("/sys", MNT_DETACH) == 0) {
    if (::mount(std::string(name).c_str(), "/sys", "sysfs", 0, nullptr) != 0)
      throw_errno(errno, "mounting /sys for namespace '" + std::string(name) + "'");
  }
  bind_etc(name);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  ::execvp(args[0], args.data());
  int err = errno;
  throw Error(err == ENOENT ? Errc::not_found : Errc::failed,
              "executing '" + argv[0] + "': " + std::strerror(err));
}

void write_sysctl(const Netns& ns, std::string_view key, std::string_view value) {
  std::string path = "/proc/sys/" + std::string(key);
  NetnsGuard in(ns);
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) throw_errno(errno, "opening sysctl " + std::string(key));
  ssize_t n = ::write(fd, value.data(), value.size());
  int err = errno;
  ::close(fd);
  if (n != static_cast<ssize_t>(value.size())) throw_errno(err, "writing sysctl " + std::string(key));
}

}  // namespace netns
}  // namespace ebpfnet
