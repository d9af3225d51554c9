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
#include <span>

#include "ebpfnet/error.hpp"
#include "ebpfnet/skeleton.hpp"
#include "from_endpoint.skel.h"
#include "from_tunnel.skel.h"
#include "from_uplink.skel.h"
#include "uplink_prefilter.skel.h"

namespace ebpfnet {
namespace {

constexpr long kBpfFsMagic = 0xcafe4a11;
constexpr const char* kBpfFsMount = "/sys/fs/bpf";

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

MapLayout layout_of(const bpf_map* m) {
  return {bpf_map__type(m), bpf_map__key_size(m), bpf_map__value_size(m), bpf_map__max_entries(m),
          bpf_map__map_flags(m)};
}

// Opens the object that declares every map, sized for cfg.
void configure(Skeleton<from_endpoint_bpf>& fe, const DatapathConfig& cfg) {
  fe->rodata->gateway_ip = cfg.gateway.be();
  if (bpf_map__set_max_entries(fe->maps.ct, cfg.ct_size) != 0)
    throw_errno(errno, "sizing the conntrack map");
}

MapFds dup_maps(bpf_object* obj) {
  MapFds fds;
  for (size_t i = 0; i < kMapNames.size(); ++i)
    fds[i] = dup_fd(bpf_map__fd(find_map(obj, kMapNames[i])), kMapNames[i]);
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

uint32_t object_id(int fd) {
  // Maps, programs and links all start their info with type and id.
  bpf_prog_info info{};
  __u32 len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) return 0;
  return info.id;
}

// Pins fd at p unless p pins that very object already; fd -1 removes the pin.
void pin_replacing(int fd, const std::filesystem::path& p) {
  if (fd < 0) {
    if (::unlink(p.c_str()) != 0 && errno != ENOENT) throw_errno(errno, "removing pin " + p.string());
    return;
  }
  if (UniqueFd old = open_pin(p); old.valid()) {
    if (object_id(old.get()) == object_id(fd)) return;
    if (::unlink(p.c_str()) != 0) throw_errno(errno, "replacing pin " + p.string());
  }
  if (bpf_obj_pin(fd, p.c_str()) != 0) throw_errno(errno, "pinning " + p.string());
}

uint64_t fnv1a(uint64_t h, std::span<const unsigned char> bytes) {
  for (unsigned char b : bytes) h = (h ^ b) * 0x100000001b3ull;
  return h;
}

}  // namespace

void share_maps(bpf_object* obj, const DatapathMaps& maps) {
  for (size_t i = 0; i < kMapNames.size(); ++i)
    if (bpf_map__reuse_fd(find_map(obj, kMapNames[i]), maps.fd(i)) != 0)
      throw_errno(errno, std::string("reusing map ") + kMapNames[i]);
}

std::string MapLayout::str() const {
  return std::string(map_type_name(type)) + " key " + std::to_string(key_size) + " value " +
         std::to_string(value_size) + ", " + std::to_string(max_entries) + " entries" +
         (flags ? ", flags " + std::to_string(flags) : "");
}

MapLayout MapLayout::of_fd(int map_fd) {
  bpf_map_info info{};
  __u32 len = sizeof(info);
  if (bpf_obj_get_info_by_fd(map_fd, &info, &len) != 0) throw_errno(errno, "reading map info");
  return {info.type, info.key_size, info.value_size, info.max_entries, info.map_flags};
}

const char* map_type_name(uint32_t type) {
  switch (type) {
    case BPF_MAP_TYPE_HASH: return "hash";
    case BPF_MAP_TYPE_PERCPU_HASH: return "percpu_hash";
    case BPF_MAP_TYPE_PERCPU_ARRAY: return "percpu_array";
    case BPF_MAP_TYPE_ARRAY: return "array";
    case BPF_MAP_TYPE_LRU_HASH: return "lru_hash";
    case BPF_MAP_TYPE_LPM_TRIE: return "lpm_trie";
    case BPF_MAP_TYPE_RINGBUF: return "ringbuf";
    default: return "other";
  }
}

uint64_t Datapath::build_id() {
  static const uint64_t id = [] {
    size_t n = 0;
    uint64_t h = 0xcbf29ce484222325ull;
    auto* fe = static_cast<const unsigned char*>(from_endpoint_bpf::elf_bytes(&n));
    h = fnv1a(h, {fe, n});
    auto* fu = static_cast<const unsigned char*>(from_uplink_bpf::elf_bytes(&n));
    h = fnv1a(h, {fu, n});
    auto* up = static_cast<const unsigned char*>(uplink_prefilter_bpf::elf_bytes(&n));
    h = fnv1a(h, {up, n});
    auto* ft = static_cast<const unsigned char*>(from_tunnel_bpf::elf_bytes(&n));
    return fnv1a(h, {ft, n});
  }();
  return id;
}

MapLayouts Datapath::layouts(const DatapathConfig& cfg) {
  Skeleton<from_endpoint_bpf> fe("from_endpoint");
  configure(fe, cfg);
  MapLayouts out;
  for (size_t i = 0; i < kMapNames.size(); ++i) out[i] = layout_of(find_map(fe->obj, kMapNames[i]));
  return out;
}

Datapath Datapath::load(const DatapathConfig& cfg, const MapFds* reuse) {
  Skeleton<from_endpoint_bpf> fe("from_endpoint");
  configure(fe, cfg);
  for (size_t i = 0; reuse && i < kMapNames.size(); ++i) {
    bpf_map* m = find_map(fe->obj, kMapNames[i]);
    const int fd = (*reuse)[i].get();
    if (fd >= 0 && MapLayout::of_fd(fd) == layout_of(m) && bpf_map__reuse_fd(m, fd) != 0)
      throw_errno(errno, std::string("reusing map ") + kMapNames[i]);
  }
  fe.load();
  DatapathMaps maps(dup_maps(fe->obj));

  Skeleton<from_uplink_bpf> fu("from_uplink");
  share_maps(fu->obj, maps);
  fu.load();

  Skeleton<uplink_prefilter_bpf> up("uplink_prefilter");
  share_maps(up->obj, maps);
  up.load();

  Skeleton<from_tunnel_bpf> ft("from_tunnel");
  share_maps(ft->obj, maps);
  ft.load();

  return Datapath(dup_fd(bpf_program__fd(fe->progs.from_endpoint), "from_endpoint"),
                  dup_fd(bpf_program__fd(fu->progs.from_uplink), "from_uplink"),
                  dup_fd(bpf_program__fd(up->progs.uplink_prefilter), "uplink_prefilter"),
                  dup_fd(bpf_program__fd(ft->progs.from_tunnel), "from_tunnel"), std::move(maps));
}

MapFds Datapath::open_map_pins(const std::filesystem::path& dir) {
  MapFds fds;
  for (size_t i = 0; i < kMapNames.size(); ++i) fds[i] = open_pin(dir / "maps" / kMapNames[i]);
  return fds;
}

uint32_t Datapath::abi_of(const MapFds& pins) {
  const UniqueFd& config = pins[map_index("config")];
  if (!config.valid()) {
    for (const auto& fd : pins)
      if (fd.valid()) return 1;
    return 0;
  }
  // Before slots, config held one struct.
  if (MapLayout::of_fd(config.get()).value_size != sizeof(uint64_t)) return 1;
  __u32 key = EBPFNET_CFG_ABI_VERSION;
  uint64_t v = 0;
  if (bpf_map_lookup_elem(config.get(), &key, &v) != 0) throw_errno(errno, "reading the datapath's ABI version");
  return v ? static_cast<uint32_t>(v) : 1;
}

uint64_t Datapath::build_of(const MapFds& pins) {
  if (abi_of(pins) < 2) return 0;
  __u32 key = EBPFNET_CFG_BUILD;
  uint64_t v = 0;
  if (bpf_map_lookup_elem(pins[map_index("config")].get(), &key, &v) != 0)
    throw_errno(errno, "reading the datapath's build");
  return v;
}

std::optional<DatapathMaps> Datapath::open_pinned_maps(const std::filesystem::path& dir, bool any_abi) {
  MapFds fds = open_map_pins(dir);
  const uint32_t abi = abi_of(fds);
  // An older datapath lacks the maps of newer ABIs; every other one must be there.
  for (size_t i = 0; i < kMapNames.size(); ++i)
    if (!fds[i].valid() && abi >= map_since_abi(i)) return std::nullopt;
  if (!any_abi && abi != EBPFNET_ABI_VERSION)
    throw Error(Errc::rejected,
                "the datapath pinned at " + dir.string() + " has ABI version " + std::to_string(abi) + ", " +
                    (abi < EBPFNET_ABI_VERSION ? "older than this ebpfnet's " + std::to_string(EBPFNET_ABI_VERSION) +
                                                     ": `ebpfnet attach` upgrades it"
                                               : "newer than this ebpfnet's " + std::to_string(EBPFNET_ABI_VERSION)));
  return DatapathMaps(std::move(fds));
}

std::optional<Datapath> Datapath::open_pinned(const std::filesystem::path& dir, bool any_abi) {
  UniqueFd from_endpoint = open_pin(dir / "from_endpoint");
  UniqueFd from_uplink = open_pin(dir / "from_uplink");
  UniqueFd uplink_prefilter = open_pin(dir / "uplink_prefilter");
  UniqueFd from_tunnel = open_pin(dir / "from_tunnel");
  if (!from_endpoint.valid() || !from_uplink.valid()) return std::nullopt;
  auto maps = open_pinned_maps(dir, any_abi);
  if (!maps) return std::nullopt;
  const uint32_t abi = abi_of(open_map_pins(dir));
  if (!uplink_prefilter.valid() && abi >= 3) return std::nullopt;
  if (!from_tunnel.valid() && abi >= 5) return std::nullopt;
  return Datapath(std::move(from_endpoint), std::move(from_uplink), std::move(uplink_prefilter),
                  std::move(from_tunnel), std::move(*maps));
}

void Datapath::make_pin_dirs(const std::filesystem::path& dir) {
  for (const char* sub : {"maps", "links"}) {
    std::error_code ec;
    std::filesystem::create_directories(dir / sub, ec);
    if (ec) throw Error(Errc::environment, "creating " + (dir / sub).string() + ": " + ec.message());
  }
}

void Datapath::pin(const std::filesystem::path& dir) {
  make_pin_dirs(dir);
  for (size_t i = 0; i < kMapNames.size(); ++i) pin_replacing(maps_.fd(i), dir / "maps" / kMapNames[i]);
  // The programs last: their pins are what mark the datapath as attached.
  pin_replacing(uplink_prefilter_.get(), dir / "uplink_prefilter");
  pin_replacing(from_tunnel_.get(), dir / "from_tunnel");
  pin_replacing(from_uplink_.get(), dir / "from_uplink");
  pin_replacing(from_endpoint_.get(), dir / "from_endpoint");
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

std::optional<ProgInfo> Datapath::prog_info_by_id(uint32_t id) {
  UniqueFd fd(bpf_prog_get_fd_by_id(id));
  if (!fd.valid()) return std::nullopt;
  return prog_info(fd.get());
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
