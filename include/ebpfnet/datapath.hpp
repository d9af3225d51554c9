// Loading a node's datapath (the skeletons compiled into the binary),
// pinning it under bpffs, and opening it again from the pins.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "ebpfnet/bpf_maps.hpp"
#include "ebpfnet/fd.hpp"
#include "ebpfnet/ipv4.hpp"

namespace ebpfnet {

struct DatapathConfig {
  Ipv4 gateway;                 // answered for ARP on every endpoint's link
  uint32_t ct_size = 262144;    // conntrack entries (two per flow)
};

struct ProgInfo {
  uint32_t id = 0;
  std::string name;
  std::string tag;  // hex
};

class Datapath {
 public:
  // Loads the programs; the maps are new unless reuse is given (a reload
  // that keeps state).
  static Datapath load(const DatapathConfig& cfg, const DatapathMaps* reuse = nullptr);
  // Re-opens a pinned datapath; nullopt when nothing is pinned in dir.
  static std::optional<Datapath> open_pinned(const std::filesystem::path& dir);
  // Opens only the pinned maps (they outlive a missing program).
  static std::optional<DatapathMaps> open_pinned_maps(const std::filesystem::path& dir);

  // <dir>/maps/<map>, <dir>/from_endpoint, <dir>/from_uplink; creates dir.
  void pin(const std::filesystem::path& dir);

  int from_endpoint_fd() const { return from_endpoint_.get(); }
  int from_uplink_fd() const { return from_uplink_.get(); }
  DatapathMaps& maps() { return maps_; }
  const DatapathMaps& maps() const { return maps_; }
  ProgInfo from_endpoint_info() const { return prog_info(from_endpoint_.get()); }
  ProgInfo from_uplink_info() const { return prog_info(from_uplink_.get()); }
  static ProgInfo prog_info(int prog_fd);

 private:
  Datapath(UniqueFd from_endpoint, UniqueFd from_uplink, DatapathMaps maps)
      : from_endpoint_(std::move(from_endpoint)),
        from_uplink_(std::move(from_uplink)),
        maps_(std::move(maps)) {}
  UniqueFd from_endpoint_;
  UniqueFd from_uplink_;
  DatapathMaps maps_;
};

// Mounts bpffs on /sys/fs/bpf when nothing is mounted there; throws
// Errc::environment when that is impossible.
void ensure_bpffs();

// Removes a pin directory and everything in it (pins only: bpffs).
void remove_pins(const std::filesystem::path& dir);

}  // namespace ebpfnet
