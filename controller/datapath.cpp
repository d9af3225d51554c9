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

namespace ebpfnet {
namespace {

constexpr long kBpfFsMagic = 0xcafe4a11;
constexpr const char* kBpfFsMount = "/sys/fs/bpf";

struct SkelDeleter {
  void operator()(from_endpoint_bpf* s) const { from_endpoint_bpf__destroy(s); }
};
using FromEndpointSkel = std::unique_ptr<from_endpoint_bpf, SkelDeleter>;

UniqueFd dup_fd(int fd, const char* what) {
  int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (d < 0) throw_errno(errno, std::string("duplicating fd of ") + what);
  return UniqueFd(d);
}

bpf_map* map_by_index(from_endpoint_bpf* s, size_t i) {
  bpf_map* maps[] = {s->maps.ep_by_ip, s->maps.ep_by_ifindex, s->maps.ep_stats, s->maps.drop_stats};
  return maps[i];
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
  FromEndpointSkel skel(from_endpoint_bpf__open());
  if (!skel) throw_errno(errno, "opening the from_endpoint BPF object");
  skel->rodata->gateway_ip = cfg.gateway.be();
  if (reuse)
    for (size_t i = 0; i < kMapNames.size(); ++i)
      if (bpf_map__reuse_fd(map_by_index(skel.get(), i), reuse->fd(i)) != 0)
        throw_errno(errno, std::string("reusing pinned map ") + kMapNames[i]);
  if (int err = from_endpoint_bpf__load(skel.get()); err != 0)
    throw_errno(-err, "loading the from_endpoint BPF program (the verifier log is above)");
  std::array<UniqueFd, 4> fds;
  for (size_t i = 0; i < kMapNames.size(); ++i)
    fds[i] = dup_fd(bpf_map__fd(map_by_index(skel.get(), i)), kMapNames[i]);
  UniqueFd prog = dup_fd(bpf_program__fd(skel->progs.from_endpoint), "from_endpoint");
  return Datapath(std::move(prog), DatapathMaps(std::move(fds[0]), std::move(fds[1]),
                                                std::move(fds[2]), std::move(fds[3])));
}

std::optional<DatapathMaps> Datapath::open_pinned_maps(const std::filesystem::path& dir) {
  std::array<UniqueFd, 4> fds;
  for (size_t i = 0; i < kMapNames.size(); ++i) {
    fds[i] = open_pin(dir / "maps" / kMapNames[i]);
    if (!fds[i].valid()) return std::nullopt;
  }
  return DatapathMaps(std::move(fds[0]), std::move(fds[1]), std::move(fds[2]), std::move(fds[3]));
}

std::optional<Datapath> Datapath::open_pinned(const std::filesystem::path& dir) {
  UniqueFd prog = open_pin(dir / "from_endpoint");
  if (!prog.valid()) return std::nullopt;
  auto maps = open_pinned_maps(dir);
  if (!maps) return std::nullopt;
  return Datapath(std::move(prog), std::move(*maps));
}

void Datapath::pin(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir / "maps", ec);
  if (ec) throw Error(Errc::environment, "creating " + (dir / "maps").string() + ": " + ec.message());
  std::filesystem::create_directories(dir / "links", ec);
  for (size_t i = 0; i < kMapNames.size(); ++i) pin_fd(maps_.fd(i), dir / "maps" / kMapNames[i]);
  // The program last: its pin is what marks the datapath as attached.
  pin_fd(from_endpoint_.get(), dir / "from_endpoint");
}

ProgInfo Datapath::from_endpoint_info() const {
  bpf_prog_info info{};
  __u32 len = sizeof(info);
  if (bpf_obj_get_info_by_fd(from_endpoint_.get(), &info, &len) != 0)
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
