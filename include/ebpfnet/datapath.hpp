// Loading a node's datapath (the skeletons compiled into the binary),
// pinning it under bpffs, opening it again from the pins, and telling how a
// pinned datapath differs from the one this binary would load.
#pragma once

#include <array>
#include <filesystem>
#include <optional>
#include <string>

#include "ebpfnet/bpf_maps.hpp"
#include "ebpfnet/fd.hpp"
#include "ebpfnet/ipv4.hpp"

struct bpf_object;

namespace ebpfnet {

inline constexpr uint32_t kDefaultCtSize = 262144;

struct DatapathConfig {
  Ipv4 gateway;                       // answered for ARP on every endpoint's link
  uint32_t ct_size = kDefaultCtSize;  // conntrack entries (two per flow)
};

struct ProgInfo {
  uint32_t id = 0;
  std::string name;
  std::string tag;  // hex
};

// A map's shape: what must match for a pinned map to serve a new program.
struct MapLayout {
  uint32_t type = 0, key_size = 0, value_size = 0, max_entries = 0, flags = 0;
  bool operator==(const MapLayout&) const = default;
  std::string str() const;  // "lru_hash key 16 value 56, 262144 entries"
  static MapLayout of_fd(int map_fd);
};
using MapLayouts = std::array<MapLayout, kMapNames.size()>;

const char* map_type_name(uint32_t type);

class Datapath {
 public:
  // The binary's programs as a number that changes whenever they do.
  static uint64_t build_id();
  // The layout of each map as this binary loads it with cfg.
  static MapLayouts layouts(const DatapathConfig& cfg);

  // Loads the programs. Each map of reuse (a valid fd) whose layout is the
  // one wanted is shared; the others are created new.
  static Datapath load(const DatapathConfig& cfg, const MapFds* reuse = nullptr);
  // Re-opens a pinned datapath; nullopt when its programs or maps are not
  // all pinned. Maps of another ABI version are Errc::rejected (their
  // layouts are not this binary's) unless any_abi: attach opens them to
  // upgrade them, and then the maps and programs an older ABI did not have
  // may be missing (invalid fds).
  static std::optional<Datapath> open_pinned(const std::filesystem::path& dir, bool any_abi = false);
  // Opens only the pinned maps (they outlive a missing program); as open_pinned.
  static std::optional<DatapathMaps> open_pinned_maps(const std::filesystem::path& dir, bool any_abi = false);
  // Each pinned map, or an invalid fd where none is pinned.
  static MapFds open_map_pins(const std::filesystem::path& dir);
  // The ABI version of pinned maps (abi.h): 0 when nothing is pinned.
  static uint32_t abi_of(const MapFds& pins);
  // The build of the pinned programs (build_id of the binary that pinned
  // them); 0 when unknown (nothing pinned, ABI 1).
  static uint64_t build_of(const MapFds& pins);

  // <dir>/maps and <dir>/links (where attachments pin their links).
  static void make_pin_dirs(const std::filesystem::path& dir);
  // <dir>/maps/<map>, <dir>/from_endpoint, <dir>/from_uplink,
  // <dir>/uplink_prefilter, <dir>/from_tunnel; creates dir. Pins of other objects under those
  // names are replaced; the pin of what this datapath lacks (an older ABI's)
  // is removed, so pinning an old datapath back restores it as it was.
  void pin(const std::filesystem::path& dir);

  int from_endpoint_fd() const { return from_endpoint_.get(); }
  int from_uplink_fd() const { return from_uplink_.get(); }
  // The XDP prefilter of the uplink; -1 in a datapath pinned before ABI 3.
  int uplink_prefilter_fd() const { return uplink_prefilter_.get(); }
  // The overlay's program on the vxlan device; -1 in a datapath pinned before ABI 5.
  int from_tunnel_fd() const { return from_tunnel_.get(); }
  DatapathMaps& maps() { return maps_; }
  const DatapathMaps& maps() const { return maps_; }
  ProgInfo from_endpoint_info() const { return prog_info(from_endpoint_.get()); }
  ProgInfo from_uplink_info() const { return prog_info(from_uplink_.get()); }
  ProgInfo uplink_prefilter_info() const { return prog_info(uplink_prefilter_.get()); }
  ProgInfo from_tunnel_info() const { return prog_info(from_tunnel_.get()); }
  static ProgInfo prog_info(int prog_fd);
  static std::optional<ProgInfo> prog_info_by_id(uint32_t id);

 private:
  Datapath(UniqueFd from_endpoint, UniqueFd from_uplink, UniqueFd uplink_prefilter, UniqueFd from_tunnel,
           DatapathMaps maps)
      : from_endpoint_(std::move(from_endpoint)),
        from_uplink_(std::move(from_uplink)),
        uplink_prefilter_(std::move(uplink_prefilter)),
        from_tunnel_(std::move(from_tunnel)),
        maps_(std::move(maps)) {}
  UniqueFd from_endpoint_;
  UniqueFd from_uplink_;
  UniqueFd uplink_prefilter_;
  UniqueFd from_tunnel_;
  DatapathMaps maps_;
};

// Every BPF object declares all the node's maps (bpf/lib/maps.h): before it
// loads, this makes it use maps' instead of creating its own.
void share_maps(bpf_object* obj, const DatapathMaps& maps);

// Mounts bpffs on /sys/fs/bpf when nothing is mounted there; throws
// Errc::environment when that is impossible.
void ensure_bpffs();

// Removes a pin directory and everything in it (pins only: bpffs).
void remove_pins(const std::filesystem::path& dir);

}  // namespace ebpfnet
