#include "ebpfnet/cluster/sandbox_store.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <nlohmann/json.hpp>

#include "ebpfnet/cluster/registry.hpp"
#include "ebpfnet/error.hpp"

namespace ebpfnet::cluster {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kClustersDir = ".clusters";
constexpr const char* kFile = "cluster.json";

// Ours alone: of the right type, owned by us, writable by no one else.
void check_private(int fd, bool dir, const fs::path& what) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw_errno(errno, "checking " + what.string());
  const bool type_ok = dir ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode);
  if (!type_ok || st.st_uid != ::geteuid() || (st.st_mode & (S_IWGRP | S_IWOTH)))
    throw Error(Errc::failed, what.string() + " is not a " + (dir ? "directory" : "file") +
                                  " of ours that only we can write; refusing to use it");
}

// openat that never follows a symbolic link at name, and says so when one is there.
UniqueFd open_at(int dirfd, const std::string& name, int flags, const fs::path& shown, mode_t mode = 0) {
  UniqueFd fd(::openat(dirfd, name.c_str(), flags | O_NOFOLLOW | O_CLOEXEC, mode));
  if (!fd.valid() && (errno == ELOOP || errno == ENOTDIR))
    throw Error(Errc::failed, shown.string() + " is a symbolic link; refusing to follow it");
  return fd;
}

UniqueFd open_private_dir(int parent, const std::string& name, const fs::path& shown, bool create) {
  if (create && ::mkdirat(parent, name.c_str(), 0700) != 0 && errno != EEXIST)
    throw_errno(errno, "creating " + shown.string());
  UniqueFd fd = open_at(parent, name, O_RDONLY | O_DIRECTORY, shown);
  if (!fd.valid()) {
    if (errno == ENOENT) return fd;
    throw_errno(errno, "opening " + shown.string());
  }
  check_private(fd.get(), true, shown);
  return fd;
}

json to_json(const DaemonId& d) { return {{"pid", d.pid}, {"start_time", d.start_time}}; }
DaemonId daemon_of(const json& j) { return {j.at("pid").get<pid_t>(), j.at("start_time").get<uint64_t>()}; }

template <class T>
std::optional<T> parsed(const json& j, const char* field) {
  if (!j.contains(field) || j[field].is_null()) return std::nullopt;
  auto v = T::parse(j[field].get<std::string>());
  if (!v) throw Error(Errc::failed, std::string("cluster record: ") + field + " is not valid");
  return v;
}

}  // namespace

SandboxStore::SandboxStore(const fs::path& state_root, const std::string& name, bool create)
    : dir_(state_root / kClustersDir / name) {
  Keys check(name);  // a cluster's name is a DNS label: never a path
  if (create) {  // as a node's state makes it: what is made is 0700
    fs::path p;
    for (const auto& part : state_root)
      if (::mkdir((p /= part).c_str(), 0700) != 0 && errno != EEXIST)
        throw_errno(errno, "creating state directory " + p.string());
  }
  UniqueFd root(::open(state_root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root.valid()) {
    if (errno == ENOENT) throw Error(Errc::not_found, "no sandbox cluster '" + name + "'");
    throw_errno(errno, "opening state directory " + state_root.string());
  }
  UniqueFd clusters = open_private_dir(root.get(), kClustersDir, state_root / kClustersDir, create);
  if (!clusters.valid()) throw Error(Errc::not_found, "no sandbox cluster '" + name + "'");
  if (create) {
    if (::mkdirat(clusters.get(), name.c_str(), 0700) != 0) {
      if (errno == EEXIST)
        throw Error(Errc::exists, "sandbox cluster '" + name + "' exists (ebpfnet cluster delete " + name + ")");
      throw_errno(errno, "creating " + dir_.string());
    }
  }
  fd_ = open_private_dir(clusters.get(), name, dir_, false);
  if (!fd_.valid()) throw Error(Errc::not_found, "no sandbox cluster '" + name + "'");
}

void SandboxStore::lock() const {
  if (::flock(fd_.get(), LOCK_EX) != 0) throw_errno(errno, "locking " + dir_.string());
}

std::optional<SandboxCluster> SandboxStore::load() const {
  UniqueFd fd = open_at(fd_.get(), kFile, O_RDONLY, dir_ / kFile);
  if (!fd.valid()) {
    if (errno == ENOENT) return std::nullopt;
    throw_errno(errno, "opening " + (dir_ / kFile).string());
  }
  check_private(fd.get(), false, dir_ / kFile);
  std::string text;
  char buf[4096];
  for (ssize_t n; (n = ::read(fd.get(), buf, sizeof buf)) != 0;) {
    if (n < 0) throw_errno(errno, "reading " + (dir_ / kFile).string());
    text.append(buf, static_cast<size_t>(n));
  }
  try {
    const json j = json::parse(text);
    SandboxCluster c;
    c.name = j.at("name").get<std::string>();
    c.mode = parse_mode(j.at("mode").get<std::string>()).value_or(Mode::vxlan);
    c.config = {*parsed<Ipv4Cidr>(j, "cidr"), j.at("pool_prefix").get<int>()};
    c.ttl = j.at("ttl").get<int>();
    c.underlay_ns = j.at("underlay_ns").get<std::string>();
    c.etcd_ns = j.at("etcd_ns").get<std::string>();
    c.etcd_ip = *parsed<Ipv4>(j, "etcd_ip");
    c.etcd = daemon_of(j.at("etcd"));
    for (const auto& n : j.at("nodes"))
      c.nodes.push_back({n.at("name").get<std::string>(), parsed<Ipv4>(n, "underlay"), parsed<Ipv4Cidr>(n, "pool"),
                         daemon_of(n.at("agent"))});
    return c;
  } catch (const json::exception& e) {
    throw Error(Errc::failed, (dir_ / kFile).string() + " is unreadable: " + e.what());
  } catch (const std::bad_optional_access&) {
    throw Error(Errc::failed, (dir_ / kFile).string() + " is unreadable: an address is missing");
  }
}

void SandboxStore::save(const SandboxCluster& c) const {
  json nodes = json::array();
  for (const auto& n : c.nodes)
    nodes.push_back({{"name", n.name},
                     {"underlay", n.underlay ? json(n.underlay->str()) : json(nullptr)},
                     {"pool", n.pool ? json(n.pool->str()) : json(nullptr)},
                     {"agent", to_json(n.agent)}});
  const std::string text = json{{"name", c.name},
                                {"mode", mode_name(c.mode)},
                                {"cidr", c.config.cidr.str()},
                                {"pool_prefix", c.config.pool_prefix},
                                {"ttl", c.ttl},
                                {"underlay_ns", c.underlay_ns},
                                {"etcd_ns", c.etcd_ns},
                                {"etcd_ip", c.etcd_ip.str()},
                                {"etcd", to_json(c.etcd)},
                                {"nodes", nodes}}
                               .dump(2) +
                           "\n";
  const std::string tmp = std::string(kFile) + ".tmp";
  ::unlinkat(fd_.get(), tmp.c_str(), 0);  // a writer that died, or something planted: never written through
  UniqueFd fd = open_at(fd_.get(), tmp, O_WRONLY | O_CREAT | O_EXCL, dir_ / tmp, 0600);
  if (!fd.valid()) throw_errno(errno, "creating " + (dir_ / tmp).string());
  if (::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()) || ::fsync(fd.get()) != 0)
    throw_errno(errno, "writing " + (dir_ / tmp).string());
  if (::renameat(fd_.get(), tmp.c_str(), fd_.get(), kFile) != 0) throw_errno(errno, "replacing " + (dir_ / kFile).string());
}

UniqueFd SandboxStore::open_log(const std::string& file) const {
  UniqueFd fd = open_at(fd_.get(), file, O_WRONLY | O_CREAT | O_APPEND, dir_ / file, 0600);
  if (!fd.valid()) throw_errno(errno, "opening " + (dir_ / file).string());
  check_private(fd.get(), false, dir_ / file);
  return fd;
}

void SandboxStore::remove() const {
  std::error_code ec;
  fs::remove_all(dir_, ec);  // removes a symbolic link, never what it points at
  if (ec) throw Error(Errc::failed, "removing " + dir_.string() + ": " + ec.message());
}

}  // namespace ebpfnet::cluster
