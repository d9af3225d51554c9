#include "ebpfnet/datapath.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "ebpfnet/error.hpp"
#include "from_endpoint.skel.h"
#include "from_uplink.skel.h"

namespace ebpfnet {
namespace {

constexpr long kBpfFsMagic = 0xcafe4a11;
constexpr const char* kBpfFsMount = "/sys/fs/bpf";

struct FromEndpointDeleter {
  void operator()(from_endpoint_bpf* s) const { from_endpoint_bpf__destroy(s); }
};
struct FromUplinkDeleter {
  void operator()(from_uplink_bpf* s) const { from_uplink_bpf__destroy(s); }
};

UniqueFd dup_fd(int fd, const char* what) {
  int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (d < 0) throw_errno(errno, std::string("duplicating fd of ") + what);
  return UniqueFd(d);
}

bpf_map* find_map(bpf_object* obj, const char* name) {
  bpf_map* m = bpf_object__find_map_by_name(obj, name);
  if (!m) throw Error(Errc::failed, std::string("BPF object has no map ") + name);
  return m;
}

// Every object declares the node's maps (bpf/lib/maps.h); all but the first
// loaded take the first one's, so one set serves every program.
void share_maps(bpf_object* obj, const MapFds& fds) {
  for (size_t i = 0; i < kMapNames.size(); ++i)
    if (bpf_map__reuse_fd(find_map(obj, kMapNames[i]), fds[i].get()) != 0)
      throw_errno(errno, std::string("reusing map ") + kMapNames[i]);
}

MapFds dup_maps(bpf_object* obj) {
  MapFds fds;
  for (size_t i = 0; i < kMapNames.size(); ++i)
    fds[i] = dup_fd(bpf_map__fd(find_map(obj, kMapNames[i])), kMapNames[i]);
  return fds;
}

MapFds dup_maps(const DatapathMaps& maps) {
  MapFds fds;
  for (size_t i = 0; i < kMapNames.size(); ++i) fds[i] = dup_fd(maps.fd(i), kMapNames[i]);
  return fds;
}

UniqueFd open_pin(const std::filesystem::path& p) {
  int fd = bpf_obj_get(p.c_str());
  if (fd < 0) {
    if (errno == ENOENT) return UniqueFd();
    throw_errno(errno, "opening pinned object " + p.string());
  }
  return UniqueFd(fd);
}

void pin_fd(int fd, const std::filesystem::path& p) {
  if (bpf_obj_pin(fd, p.c_str()) != 0 && errno != EEXIST) throw_errno(errno, "pinning " + p.string());
}

}  // namespace

Datapath Datapath::load(const DatapathConfig& cfg, const DatapathMaps* reuse) {
  std::unique_ptr<from_endpoint_bpf, FromEndpointDeleter> fe(from_endpoint_bpf__open());
  if (!fe) throw_errno(errno, "opening the from_endpoint BPF object");
  fe->rodata->gateway_ip = cfg.gateway.be();
  if (bpf_map__set_max_entries(fe->maps.ct, cfg.ct_size) != 0)
    throw_errno(errno, "sizing the conntrack map");
  if (reuse) share_maps(fe->obj, dup_maps(*reuse));
  if (int err = from_endpoint_bpf__load(fe.get()); err != 0)
    throw_errno(-err, "loading the from_endpoint BPF program (the verifier log is above)");
  MapFds fds = dup_maps(fe->obj);

  std::unique_ptr<from_uplink_bpf, FromUplinkDeleter> fu(from_uplink_bpf__open());
  if (!fu) throw_errno(errno, "opening the from_uplink BPF object");
  share_maps(fu->obj, fds);
  if (int err = from_uplink_bpf__load(fu.get()); err != 0)
    throw_errno(-err, "loading the from_uplink BPF program (the verifier log is above)");

  return Datapath(dup_fd(bpf_program__fd(fe->progs.from_endpoint), "from_endpoint"),
                  dup_fd(bpf_program__fd(fu->progs.from_uplink), "from_uplink"),
                  DatapathMaps(std::move(fds)));
}

std::optional<DatapathMaps> Datapath::open_pinned_maps(const std::filesystem::path& dir) {
  MapFds fds;
  for (size_t i = 0; i < kMapNames.size(); ++i) {
    fds[i] = open_pin(dir / "maps" / kMapNames[i]);
    if (!fds[i].valid()) return std::nullopt;
  }
  return DatapathMaps(std::move(fds));
}

std::optional<Datapath> Datapath::open_pinned(const std::filesystem::path& dir) {
  UniqueFd from_endpoint = open_pin(dir / "from_endpoint");
  UniqueFd from_uplink = open_pin(dir / "from_uplink");
  if (!from_endpoint.valid() || !from_uplink.valid()) return std::nullopt;
  auto maps = open_pinned_maps(dir);
  if (!maps) return std::nullopt;
  return Datapath(std::move(from_endpoint), std::move(from_uplink), std::move(*maps));
}

void Datapath::pin(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir / "maps", ec);
  if (ec) throw Error(Errc::environment, "creating " + (dir / "maps").string() + ": " + ec.message());
  std::filesystem::create_directories(dir / "links", ec);
  for (size_t i = 0; i < kMapNames.size(); ++i) pin_fd(maps_.fd(i), dir / "maps" / kMapNames[i]);
  // The programs last: their pins are what mark the datapath as attached.
  // A reload replaces the programs of an older one.
  for (auto [fd, name] : {std::pair{from_uplink_.get(), "from_uplink"},
                          std::pair{from_endpoint_.get(), "from_endpoint"}}) {
    std::filesystem::remove(dir / name, ec);
    pin_fd(fd, dir / name);
  }
}

ProgInfo Datapath::prog_info(int prog_fd) {
  bpf_prog_info info{};
  __u32 len = sizeof(info);
  if (bpf_obj_get_info_by_fd(prog_fd, &info, &len) != 0)
    throw_errno(errno, "reading program info");
  ProgInfo p;
  p.id = info.id;
  p.name = info.name;
  char hex[3];
  for (auto b : info.tag) {
    std::snprintf(hex, sizeof hex, "%02x", b);
    p.tag += hex;
  }
  return p;
}

void ensure_bpffs() {
  struct statfs st{};
  if (::statfs(kBpfFsMount, &st) == 0 && st.f_type == kBpfFsMagic) return;
  if (::mount("bpf", kBpfFsMount, "bpf", 0, "mode=0700") != 0)
    throw Error(Errc::environment, std::string("no bpffs at ") + kBpfFsMount +
                                       " and mounting one failed: " + std::strerror(errno));
}

void remove_pins(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  if (ec) throw Error(Errc::failed, "removing pins in " + dir.string() + ": " + ec.message());
}

}  // namespace ebpfnet
