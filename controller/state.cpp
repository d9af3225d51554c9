#include "ebpfnet/state.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <fstream>
#include <nlohmann/json.hpp>

#include "ebpfnet/error.hpp"

namespace ebpfnet {

using nlohmann::json;

std::string to_string(TcMode m) { return m == TcMode::tcx ? "tcx" : "clsact"; }

std::optional<TcMode> parse_tc_mode(std::string_view s) {
  if (s == "tcx") return TcMode::tcx;
  if (s == "clsact") return TcMode::clsact;
  return std::nullopt;
}

void set_ct_timeout(CtTimeouts& t, std::string_view spec) {
  auto eq = spec.find('=');
  std::string_view name = spec.substr(0, eq);
  uint32_t* field = name == "syn" ? &t.syn : name == "tcp" ? &t.tcp : name == "closing" ? &t.closing
                    : name == "udp" ? &t.udp : name == "icmp" ? &t.icmp : nullptr;
  std::string_view num = eq == std::string_view::npos ? "" : spec.substr(eq + 1);
  uint32_t v = 0;
  auto [end, ec] = std::from_chars(num.data(), num.data() + num.size(), v);
  if (!field || num.empty() || ec != std::errc() || end != num.data() + num.size() || v == 0)
    throw Error(Errc::usage, "'" + std::string(spec) +
                                 "' is not NAME=SECONDS with NAME one of syn, tcp, closing, udp, icmp");
  *field = v;
}

size_t NodeState::policed_endpoints() const {
  size_t n = 0;
  for (const auto& e : endpoints) n += e.policy.has_value();
  return n;
}

EndpointRecord* NodeState::find(std::string_view endpoint) {
  for (auto& e : endpoints)
    if (e.name == endpoint) return &e;
  return nullptr;
}

namespace {

constexpr int kStateVersion = 1;

Ipv4 ip_from(const json& j) {
  auto a = Ipv4::parse(j.get<std::string>());
  if (!a) throw Error(Errc::failed, "state: bad address " + j.dump());
  return *a;
}

Mac mac_from(const json& j) {
  auto m = parse_mac(j.get<std::string>());
  if (!m) throw Error(Errc::failed, "state: bad MAC " + j.dump());
  return *m;
}

TcMode mode_from(const json& j) {
  auto m = parse_tc_mode(j.get<std::string>());
  if (!m) throw Error(Errc::failed, "state: bad tc mode " + j.dump());
  return *m;
}

json to_json(const EndpointRecord& e) {
  return {{"name", e.name},
          {"netns", e.netns},
          {"netns_path", e.netns_path},
          {"netns_owned", e.netns_owned},
          {"ifname", e.ifname},
          {"ip", e.ip.str()},
          {"mac", mac_str(e.mac)},
          {"host_ifname", e.host_ifname},
          {"host_ifindex", e.host_ifindex},
          {"host_mac", mac_str(e.host_mac)},
          {"tc_mode", to_string(e.tc_mode)},
          {"container_id", e.container_id},
          {"cni_network", e.cni_network},
          {"policy", e.policy ? to_json(*e.policy) : json(nullptr)},
          {"policy_sets", e.policy_ids.set},
          {"policy_first_classes", e.policy_ids.first_class}};
}

EndpointRecord endpoint_from(const json& j) {
  EndpointRecord e;
  e.name = j.at("name").get<std::string>();
  e.netns = j.at("netns").get<std::string>();
  e.netns_path = j.at("netns_path").get<std::string>();
  e.netns_owned = j.at("netns_owned").get<bool>();
  e.ifname = j.at("ifname").get<std::string>();
  e.ip = ip_from(j.at("ip"));
  e.mac = mac_from(j.at("mac"));
  e.host_ifname = j.at("host_ifname").get<std::string>();
  e.host_ifindex = j.at("host_ifindex").get<int>();
  e.host_mac = mac_from(j.at("host_mac"));
  e.tc_mode = mode_from(j.at("tc_mode"));
  // Absent from state written before the CNI plugin existed.
  e.container_id = j.value("container_id", "");
  e.cni_network = j.value("cni_network", "");
  // Absent from state written before policy existed.
  if (j.contains("policy") && !j["policy"].is_null()) {
    e.policy = policy_from_json(j["policy"]);
    e.policy_ids.set = j.at("policy_sets").get<std::array<uint32_t, 2>>();
    e.policy_ids.first_class = j.at("policy_first_classes").get<std::array<uint32_t, 2>>();
  }
  return e;
}

}  // namespace

StateStore::StateStore(std::filesystem::path root, std::string node)
    : dir_(std::move(root) / node), node_(std::move(node)) {}

StateStore::Lock StateStore::lock(bool create) const {
  std::error_code ec;
  if (create) {
    std::filesystem::create_directories(dir_, ec);
    if (ec) throw Error(Errc::failed, "creating state directory " + dir_.string() + ": " + ec.message());
  } else if (!std::filesystem::is_directory(dir_)) {
    throw Error(Errc::not_found, "node '" + node_ + "' does not exist (no state in " + dir_.string() + ")");
  }
  std::string path = (dir_ / "lock").string();
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd.valid()) throw_errno(errno, "opening lock " + path);
  while (::flock(fd.get(), LOCK_EX) != 0)
    if (errno != EINTR) throw_errno(errno, "locking " + path);
  return Lock(std::move(fd));
}

bool StateStore::exists() const { return std::filesystem::exists(dir_ / "state.json"); }

NodeState StateStore::load() const {
  std::ifstream f(dir_ / "state.json");
  if (!f) throw Error(Errc::not_found, "node '" + node_ + "' does not exist (no state in " +
                                           dir_.string() + ")");
  try {
    json j = json::parse(f);
    if (j.at("version").get<int>() != kStateVersion)
      throw Error(Errc::failed, "state of node '" + node_ + "' has an unknown version");
    NodeState s;
    s.name = j.at("name").get<std::string>();
    s.sandbox = j.at("sandbox").get<bool>();
    auto cidr = Ipv4Cidr::parse(j.at("cidr").get<std::string>());
    if (!cidr) throw Error(Errc::failed, "state: bad cidr");
    s.cidr = *cidr;
    s.last_allocated = ip_from(j.at("last_allocated"));
    s.attached = j.at("attached").get<bool>();
    if (!j.at("tc_mode").is_null()) s.tc_mode = mode_from(j.at("tc_mode"));
    for (const auto& e : j.at("endpoints")) s.endpoints.push_back(endpoint_from(e));
    // NAT fields are absent from state written before NAT existed.
    if (j.contains("uplink") && !j["uplink"].is_null())
      s.uplink = UplinkRecord{j["uplink"].at("ifname").get<std::string>(),
                              j["uplink"].at("outside").get<std::string>(),
                              mode_from(j["uplink"].at("tc_mode")),
                              j["uplink"].value("outside_owned", true)};
    for (const auto& r : j.value("routes", json::array())) {
      auto dst = Ipv4Cidr::parse(r.at("dst").get<std::string>());
      if (!dst) throw Error(Errc::failed, "state: bad route " + r.dump());
      s.routes.push_back({*dst, ip_from(r.at("via"))});
    }
    for (const auto& p : j.value("published", json::array()))
      s.published.push_back({p.at("endpoint").get<std::string>(), p.at("proto").get<std::string>(),
                             p.at("target_port").get<uint16_t>(), p.at("port").get<uint16_t>()});
    if (j.contains("ct_timeouts")) {
      const auto& t = j["ct_timeouts"];
      s.ct_timeouts = {t.at("syn").get<uint32_t>(), t.at("tcp").get<uint32_t>(),
                       t.at("closing").get<uint32_t>(), t.at("udp").get<uint32_t>(),
                       t.at("icmp").get<uint32_t>()};
    }
    if (j.contains("policy_counters")) {
      s.policy_counters.next_set = j["policy_counters"].at("next_set").get<uint32_t>();
      s.policy_counters.next_class = j["policy_counters"].at("next_class").get<uint32_t>();
    }
    return s;
  } catch (const json::exception& e) {
    throw Error(Errc::failed, "reading state of node '" + node_ + "': " + e.what());
  }
}

void StateStore::save(const NodeState& s) const {
  json eps = json::array();
  for (const auto& e : s.endpoints) eps.push_back(to_json(e));
  json pubs = json::array();
  for (const auto& p : s.published)
    pubs.push_back({{"endpoint", p.endpoint}, {"proto", p.proto}, {"target_port", p.target_port},
                    {"port", p.port}});
  json routes = json::array();
  for (const auto& r : s.routes) routes.push_back({{"dst", r.dst.str()}, {"via", r.via.str()}});
  json j = {{"version", kStateVersion},
            {"name", s.name},
            {"sandbox", s.sandbox},
            {"cidr", s.cidr.str()},
            {"last_allocated", s.last_allocated.str()},
            {"attached", s.attached},
            {"tc_mode", s.tc_mode ? json(to_string(*s.tc_mode)) : json(nullptr)},
            {"endpoints", eps},
            {"uplink", s.uplink ? json{{"ifname", s.uplink->ifname},
                                       {"outside", s.uplink->outside},
                                       {"tc_mode", to_string(s.uplink->tc_mode)},
                                       {"outside_owned", s.uplink->outside_owned}}
                                : json(nullptr)},
            {"routes", routes},
            {"published", pubs},
            {"ct_timeouts", {{"syn", s.ct_timeouts.syn},
                             {"tcp", s.ct_timeouts.tcp},
                             {"closing", s.ct_timeouts.closing},
                             {"udp", s.ct_timeouts.udp},
                             {"icmp", s.ct_timeouts.icmp}}},
            {"policy_counters", {{"next_set", s.policy_counters.next_set},
                                 {"next_class", s.policy_counters.next_class}}}};
  std::string text = j.dump(2) + "\n";
  std::string tmp = (dir_ / "state.json.tmp").string();
  std::string dst = (dir_ / "state.json").string();
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd.valid()) throw_errno(errno, "writing " + tmp);
  for (size_t off = 0; off < text.size();) {
    ssize_t n = ::write(fd.get(), text.data() + off, text.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_errno(errno, "writing " + tmp);
    off += n;
  }
  if (::fsync(fd.get()) != 0) throw_errno(errno, "syncing " + tmp);
  fd.reset();
  if (::rename(tmp.c_str(), dst.c_str()) != 0) throw_errno(errno, "replacing " + dst);
  // The rename is durable only once the directory is synced too.
  UniqueFd dir(::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir.valid()) ::fsync(dir.get());
}

void StateStore::remove() const {
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
  if (ec) throw Error(Errc::failed, "removing " + dir_.string() + ": " + ec.message());
}

}  // namespace ebpfnet
