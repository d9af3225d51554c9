#include "ebpfnet/state.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <utility>

#include "ebpfnet/error.hpp"
#include "json_fields.hpp"
#include "endpoint_json.hpp"
#include "service_json.hpp"

namespace ebpfnet {

using nlohmann::json;
namespace fs = std::filesystem;

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

namespace {

// The schema save() writes. A change that an older file does not satisfy
// (a new required field, a field that changes meaning) bumps it and appends
// a migration to kMigrations.
constexpr int kStateVersion = 9;

// ---- Writing

json to_json(const CtTimeouts& t) {
  return {{"syn", t.syn}, {"tcp", t.tcp}, {"closing", t.closing}, {"udp", t.udp}, {"icmp", t.icmp}};
}

json to_json(const PolicyIdCounters& c) {
  return {{"next_set", c.next_set}, {"next_class", c.next_class}};
}

json to_json(const EndpointRecord& e) {
  json j = {{"name", e.name},
          {"netns", e.netns},
          {"netns_path", e.netns_path},
          {"netns_owned", e.netns_owned},
          {"ifname", e.ifname},
          {"ip", e.ip.str()},
          {"mac", mac_str(e.mac)},
          {"host_ifname", e.host_ifname},
          {"host_ifindex", e.host_ifindex},
          {"host_mac", mac_str(e.host_mac)},
          {"netns_cookie", e.netns_cookie},
          {"tc_mode", to_string(e.tc_mode)},
          {"container_id", e.container_id},
          {"cni_network", e.cni_network},
          {"policy", e.policy ? to_json(*e.policy) : json(nullptr)},
          {"policy_sets", e.policy_ids.set},
          {"policy_first_classes", e.policy_ids.first_class}};
  // Only on dual-stack nodes, so an IPv4 node's file is what it always was.
  if (e.ip6) j["ip6"] = e.ip6->str();
  return j;
}

json to_json(const PublishRecord& p) {
  return {{"endpoint", p.endpoint}, {"proto", p.proto}, {"target_port", p.target_port}, {"port", p.port}};
}

json to_json(const NodeState& s) {
  json pubs = json::array();
  for (const auto& p : s.published)
    pubs.push_back(to_json(p));
  json routes = json::array();
  for (const auto& r : s.routes) routes.push_back({{"dst", r.dst.str()}, {"via", r.via.str()}});
  json prefilter = json::array();
  for (const auto& c : s.prefilter) prefilter.push_back(c.str());
  json overlay = nullptr;
  if (s.overlay) {
    json peers = json::array();
    for (const auto& p : s.overlay->peers) peers.push_back({{"pool", p.pool.str()}, {"via", p.via.str()}});
    overlay = {{"ifname", s.overlay->ifname},
               {"vni", s.overlay->vni},
               {"port", s.overlay->port},
               {"mtu", s.overlay->mtu},
               {"tc_mode", to_string(s.overlay->tc_mode)},
               {"peers", peers}};
  }
  json out = {{"version", kStateVersion},
          {"name", s.name},
          {"sandbox", s.sandbox},
          {"cidr", s.cidr.str()},
          {"last_allocated", s.last_allocated.str()},
          {"attached", s.attached},
          {"tc_mode", s.tc_mode ? json(to_string(*s.tc_mode)) : json(nullptr)},
          {"uplink", s.uplink ? json{{"ifname", s.uplink->ifname},
                                     {"outside", s.uplink->outside},
                                     {"tc_mode", to_string(s.uplink->tc_mode)},
                                     {"outside_owned", s.uplink->outside_owned},
                                     {"xdp_mode", s.uplink->xdp ? json(to_string(*s.uplink->xdp)) : json(nullptr)}}
                              : json(nullptr)},
          {"routes", routes},
          {"published", pubs},
          {"ct_timeouts", to_json(s.ct_timeouts)},
          {"ct_size", s.ct_size},
          {"socket_lb", s.socket_lb},
          {"policy_counters", to_json(s.policy_counters)},
          {"prefilter", prefilter},
          {"overlay", overlay},
          {"native_cidr", s.native_cidr ? json(s.native_cidr->str()) : json(nullptr)}};
  if (s.cidr6) out["cidr6"] = s.cidr6->str();
  return out;
}

json to_json(const Journal& j) {
  json adding = json::array(), unpublishing = json::array();
  for (const auto& e : j.adding) adding.push_back(to_json(e));
  for (const auto& p : j.unpublishing) unpublishing.push_back(to_json(p));
  return {{"op", j.op},           {"pid", j.pid},       {"adding", adding}, {"removing", j.removing},
          {"unpublishing", unpublishing}, {"netns", j.netns}};
}

// ---- Migrations: each turns a document of one version into the next.

// Version 1 grew fields with its features (CNI, policy, NAT, routes,
// timeouts); a file written before a feature lacks its fields, and a
// missing field meant its default. Version 2 has them all, and ct_size.
json v1_to_v2(json j) {
  auto fill = [](json& obj, const char* key, json value) {
    if (obj.is_object() && !obj.contains(key)) obj[key] = std::move(value);
  };
  if (j.contains("endpoints") && j["endpoints"].is_array())
    for (auto& e : j["endpoints"]) {
      fill(e, "container_id", "");
      fill(e, "cni_network", "");
      fill(e, "policy", nullptr);
      fill(e, "policy_sets", PolicyIds{}.set);
      fill(e, "policy_first_classes", PolicyIds{}.first_class);
    }
  fill(j, "uplink", nullptr);
  fill(j["uplink"], "outside_owned", true);
  fill(j, "routes", json::array());
  fill(j, "published", json::array());
  fill(j, "ct_timeouts", to_json(CtTimeouts{}));
  fill(j, "ct_size", NodeState{}.ct_size);
  fill(j, "policy_counters", to_json(PolicyIdCounters{}));
  return j;
}

// Version 3: the uplink prefilter (a deny list, empty before) and its XDP
// attachment on the uplink (none before).
json v2_to_v3(json j) {
  if (!j.contains("prefilter")) j["prefilter"] = json::array();
  if (j.contains("uplink") && j["uplink"].is_object() && !j["uplink"].contains("xdp_mode"))
    j["uplink"]["xdp_mode"] = nullptr;
  return j;
}

// Version 4: services (none before).
json v3_to_v4(json j) {
  if (!j.contains("services")) j["services"] = json::array();
  if (!j.contains("service_counters")) j["service_counters"] = {{"next_service", 1}, {"next_backend", 1}};
  return j;
}

// Version 5: connect-time balancing (on unless attach turned it off) and
// each endpoint's namespace cookie (0: not known yet, learnt at the next
// refill from its namespace).
void fill_netns_cookies(json& endpoints) {
  if (endpoints.is_array())
    for (auto& e : endpoints)
      if (e.is_object() && !e.contains("netns_cookie")) e["netns_cookie"] = 0;
}

json v4_to_v5(json j) {
  if (!j.contains("socket_lb")) j["socket_lb"] = true;
  if (j.contains("endpoints")) fill_netns_cookies(j["endpoints"]);
  return j;
}

// Version 6: the VXLAN overlay (none before).
json v5_to_v6(json j) {
  if (!j.contains("overlay")) j["overlay"] = nullptr;
  return j;
}

// Version 7: the services move to their own table (services.db). A file
// of an older version keeps its "services" and "service_counters" for the
// loading transaction to move there; save() no longer writes them.
json v6_to_v7(json j) { return j; }

// Version 8: the endpoints move to their own table in the same database. A
// file of an older version keeps its "endpoints" for the loading
// transaction to move there; save() no longer writes them.
json v7_to_v8(json j) { return j; }

// Version 9: native routing's cluster CIDR (none before).
json v8_to_v9(json j) {
  if (!j.contains("native_cidr")) j["native_cidr"] = nullptr;
  return j;
}

// kMigrations[v - 1] turns version v into version v + 1.
using Migration = json (*)(json);
const std::array<Migration, kStateVersion - 1> kMigrations{v1_to_v2, v2_to_v3, v3_to_v4, v4_to_v5,
                                                           v5_to_v6, v6_to_v7, v7_to_v8, v8_to_v9};

json migrate(json j, int version) {
  if (version < 1)
    throw Error(Errc::failed, "version: " + std::to_string(version) + " is not a schema version");
  for (int v = version; v < kStateVersion; ++v) {
    j = kMigrations[v - 1](std::move(j));
    j["version"] = v + 1;
  }
  return j;
}

// ---- Reading: strict, and every failure names its field.

EndpointRecord endpoint_from(const Fields& f) {
  EndpointRecord e;
  e.name = f.str("name");
  e.netns = f.str("netns");
  e.netns_path = f.str("netns_path");
  e.netns_owned = f.flag("netns_owned");
  e.ifname = f.str("ifname");
  e.ip = f.ip("ip");
  if (f.has("ip6")) e.ip6 = f.ip6("ip6");
  e.mac = f.mac("mac");
  e.host_ifname = f.str("host_ifname");
  e.host_ifindex = f.number<int>("host_ifindex");
  e.host_mac = f.mac("host_mac");
  e.netns_cookie = f.number<uint64_t>("netns_cookie");
  e.tc_mode = f.mode("tc_mode");
  e.container_id = f.str("container_id");
  e.cni_network = f.str("cni_network");
  if (!f.null("policy")) {
    try {
      e.policy = policy_from_json(f.at("policy"));
    } catch (const std::exception& x) {
      throw f.bad("policy", x.what());
    }
  }
  e.policy_ids.set = f.pair("policy_sets");
  e.policy_ids.first_class = f.pair("policy_first_classes");
  return e;
}

PublishRecord published_from(const Fields& p) {
  return {p.str("endpoint"), p.str("proto"), p.number<uint16_t>("target_port"), p.number<uint16_t>("port")};
}

Journal journal_from(json doc) {
  // Journals carry no version: one a killed older ebpfnet wrote has
  // endpoints without a namespace cookie (0 means not known).
  if (doc.is_object() && doc.contains("adding")) fill_netns_cookies(doc["adding"]);
  Fields f(doc, "");
  Journal j;
  j.op = f.str("op");
  j.pid = f.number<int>("pid");
  for (const Fields& e : f.list("adding")) j.adding.push_back(endpoint_from(e));
  j.removing = f.strings("removing");
  for (const Fields& p : f.list("unpublishing")) j.unpublishing.push_back(published_from(p));
  j.netns = f.strings("netns");
  return j;
}

NodeState state_from(const json& j, int version) {
  Fields f(j, "");
  NodeState s;
  s.name = f.str("name");
  s.sandbox = f.flag("sandbox");
  s.cidr = f.cidr("cidr");
  if (f.has("cidr6")) s.cidr6 = f.cidr6("cidr6");
  s.last_allocated = f.ip("last_allocated");
  s.attached = f.flag("attached");
  if (!f.null("tc_mode")) s.tc_mode = f.mode("tc_mode");
  if (version < 8) {
    s.legacy_endpoints.emplace();
    for (const Fields& e : f.list("endpoints")) s.legacy_endpoints->push_back(endpoint_from(e));
  }
  if (!f.null("uplink")) {
    Fields u = f.object("uplink");
    s.uplink = UplinkRecord{u.str("ifname"), u.str("outside"), u.mode("tc_mode"), u.flag("outside_owned")};
    if (!u.null("xdp_mode")) {
      auto m = parse_xdp_mode(u.str("xdp_mode"));
      if (!m) throw u.bad("xdp_mode", "is not native or generic");
      s.uplink->xdp = m;
    }
  }
  for (const Fields& r : f.list("routes")) s.routes.push_back({r.cidr("dst"), r.ip("via")});
  for (const Fields& p : f.list("published")) s.published.push_back(published_from(p));
  Fields t = f.object("ct_timeouts");
  s.ct_timeouts = {t.number<uint32_t>("syn"), t.number<uint32_t>("tcp"), t.number<uint32_t>("closing"),
                   t.number<uint32_t>("udp"), t.number<uint32_t>("icmp")};
  s.ct_size = f.number<uint32_t>("ct_size");
  s.socket_lb = f.flag("socket_lb");
  Fields c = f.object("policy_counters");
  s.policy_counters = {c.number<uint32_t>("next_set"), c.number<uint32_t>("next_class")};
  if (version < 7) {
    NodeState::LegacyServices l;
    for (const Fields& v : f.list("services")) l.services.push_back(service_from(v));
    Fields c = f.object("service_counters");
    l.counters = {c.number<uint32_t>("next_service"), c.number<uint32_t>("next_backend")};
    s.legacy_services = std::move(l);
  }
  for (const std::string& p : f.strings("prefilter")) {
    auto cidr = Ipv4Cidr::parse(p);
    if (!cidr) throw f.bad("prefilter", "'" + p + "' is not a prefix");
    s.prefilter.push_back(*cidr);
  }
  if (!f.null("overlay")) {
    Fields o = f.object("overlay");
    OverlayRecord r;
    r.ifname = o.str("ifname");
    r.vni = o.number<uint32_t>("vni");
    r.port = o.number<uint16_t>("port");
    r.mtu = o.number<uint32_t>("mtu");
    r.tc_mode = o.mode("tc_mode");
    for (const Fields& p : o.list("peers")) r.peers.push_back({p.cidr("pool"), p.ip("via")});
    s.overlay = std::move(r);
  }
  if (!f.null("native_cidr")) s.native_cidr = f.cidr("native_cidr");
  return s;
}

// Runs one step of reading a state file; its errors name the file.
template <typename Step>
auto reading(const fs::path& file, Step step) {
  try {
    return step();
  } catch (const Error& e) {
    throw Error(Errc::failed, "state " + file.string() + ": " + e.what());
  } catch (const json::exception& e) {
    throw Error(Errc::failed, "state " + file.string() + ": " + e.what());
  }
}

// ---- Files: reached through the node directory's fd, never by path.

// Refuses what another user could have put there or could change: the
// directory and its files must be ours, of their type, and writable by no
// one else.
void check_owned(int fd, bool dir, const std::string& what) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw_errno(errno, "checking " + what);
  std::string problem;
  if (dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode)) {
    problem = dir ? "is not a directory" : "is not a regular file";
  } else if (st.st_uid != ::geteuid()) {
    problem = "is owned by uid " + std::to_string(st.st_uid) + ", not " + std::to_string(::geteuid());
  } else if (st.st_mode & (S_IWGRP | S_IWOTH)) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
    problem = std::string("is writable by group or others (mode ") + mode + ")";
  }
  if (!problem.empty()) throw Error(Errc::failed, what + " " + problem + "; refusing to use it");
}

// mkdir -p for the state root; what it makes is 0700, as only we read it.
void make_private_dirs(const fs::path& dir) {
  fs::path p;
  for (const auto& part : dir) {
    p /= part;
    if (::mkdir(p.c_str(), 0700) != 0 && errno != EEXIST)
      throw_errno(errno, "creating state directory " + p.string());
  }
}

// A node's directory and the state root that holds it. fd is invalid when
// the node has no directory.
struct NodeDir {
  UniqueFd root, fd;
};

// Opens <root>/<node> without following a symlink at the node's name (the
// root itself may be a symlink an administrator made), making it (0700)
// when asked, and checks that it is ours alone.
NodeDir open_node_dir(const fs::path& dir, bool create) {
  const fs::path root = dir.parent_path();
  const std::string node = dir.filename();
  if (create) make_private_dirs(root);
  NodeDir d;
  d.root = UniqueFd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!d.root.valid()) {
    if (errno == ENOENT) return d;
    throw_errno(errno, "opening state directory " + root.string());
  }
  if (create && ::mkdirat(d.root.get(), node.c_str(), 0700) != 0 && errno != EEXIST)
    throw_errno(errno, "creating state directory " + dir.string());
  d.fd = UniqueFd(::openat(d.root.get(), node.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!d.fd.valid()) {
    const int err = errno;
    if (err == ENOENT) return d;
    struct stat st {};
    if ((err == ENOTDIR || err == ELOOP) &&
        ::fstatat(d.root.get(), node.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
      throw Error(Errc::failed, "state directory " + dir.string() + " is a symbolic link; refusing to follow it");
    throw_errno(err, "opening state directory " + dir.string());
  }
  check_owned(d.fd.get(), true, "state directory " + dir.string());
  return d;
}

// Opens a file of the node's directory, never through a symlink, and checks
// it like the directory. Invalid when it does not exist (without O_CREAT).
UniqueFd open_in(const NodeDir& d, const fs::path& file, int flags, mode_t mode = 0) {
  UniqueFd fd(::openat(d.fd.get(), file.filename().c_str(), flags | O_NOFOLLOW | O_CLOEXEC, mode));
  if (!fd.valid()) {
    if (errno == ENOENT) return fd;
    if (errno == ELOOP)
      throw Error(Errc::failed, "state file " + file.string() + " is a symbolic link; refusing to follow it");
    throw_errno(errno, "opening " + file.string());
  }
  check_owned(fd.get(), false, "state file " + file.string());
  return fd;
}

std::string read_all(int fd, const fs::path& file) {
  std::string text;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_errno(errno, "reading " + file.string());
    if (n == 0) return text;
    text.append(buf, static_cast<size_t>(n));
  }
}

void write_all(int fd, const std::string& text, const fs::path& file) {
  for (size_t off = 0; off < text.size();) {
    ssize_t n = ::write(fd, text.data() + off, text.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_errno(errno, "writing " + file.string());
    off += static_cast<size_t>(n);
  }
}

// The names in a directory, read through its fd.
std::vector<std::string> names_in(const NodeDir& d, const fs::path& dir) {
  int fd = ::fcntl(d.fd.get(), F_DUPFD_CLOEXEC, 0);
  DIR* raw = fd < 0 ? nullptr : ::fdopendir(fd);
  if (!raw) {
    int err = errno;
    if (fd >= 0) ::close(fd);
    throw_errno(err, "listing " + dir.string());
  }
  std::unique_ptr<DIR, int (*)(DIR*)> entries(raw, ::closedir);
  std::vector<std::string> out;
  while (const dirent* e = ::readdir(entries.get())) {
    std::string name = e->d_name;
    if (name != "." && name != "..") out.push_back(name);
  }
  return out;
}

std::string no_node(const std::string& node, const fs::path& dir) {
  return "node '" + node + "' does not exist (no state in " + dir.string() + ")";
}

}  // namespace

// An endpoint's record: a row of the endpoint table, an element of
// "endpoints" in state files of schema 7 and older, and of a journal.
json endpoint_to_json(const EndpointRecord& e) { return to_json(e); }
EndpointRecord endpoint_from_json(const json& j) { return endpoint_from(Fields(j, "")); }

StateStore::StateStore(fs::path root, std::string node) : dir_(std::move(root) / node), node_(std::move(node)) {}

StateStore::Lock StateStore::lock(bool create) const {
  on_disk_.reset();
  NodeDir d = open_node_dir(dir_, create);
  if (!d.fd.valid()) throw Error(Errc::not_found, no_node(node_, dir_));
  const fs::path path = dir_ / "lock";
  UniqueFd fd = open_in(d, path, O_RDWR | O_CREAT, 0600);
  if (!fd.valid()) throw_errno(ENOENT, "opening lock " + path.string());
  while (::flock(fd.get(), LOCK_EX) != 0)
    if (errno != EINTR) throw_errno(errno, "locking " + path.string());
  return Lock(std::move(fd));
}

bool StateStore::exists() const {
  NodeDir d = open_node_dir(dir_, false);
  struct stat st {};
  return d.fd.valid() && ::fstatat(d.fd.get(), "state.json", &st, AT_SYMLINK_NOFOLLOW) == 0;
}

NodeState StateStore::load() const {
  const fs::path file = dir_ / "state.json";
  auto text = read_file("state.json");
  if (!text) throw Error(Errc::not_found, no_node(node_, dir_));
  on_disk_ = text;
  json j = reading(file, [&] { return json::parse(*text); });
  const int version = reading(file, [&] { return Fields(j, "").number<int>("version"); });
  if (version > kStateVersion)
    throw Error(Errc::failed, "state of node '" + node_ + "' (" + file.string() + ") has schema version " +
                                  std::to_string(version) + "; this ebpfnet reads up to " +
                                  std::to_string(kStateVersion) + ": upgrade ebpfnet");
  return reading(file, [&] {
    NodeState s = state_from(migrate(std::move(j), version), version);
    validate_state(s, node_);
    return s;
  });
}

fs::path StateStore::checked_path(std::string_view name) const {
  NodeDir d = open_node_dir(dir_, false);
  if (!d.fd.valid()) throw Error(Errc::not_found, no_node(node_, dir_));
  open_in(d, dir_ / name, O_RDONLY | O_NONBLOCK);
  return dir_ / name;
}

void StateStore::save(const NodeState& s) const {
  // Many operations (a service change, above all) leave the state as it
  // was: not rewriting it saves two fsyncs and a rename.
  std::string text = to_json(s).dump(2) + "\n";
  if (on_disk_ && text == *on_disk_) return;
  write_file("state.json", text, true);
  on_disk_ = std::move(text);
}

void StateStore::write_file(const std::string& name, const std::string& text, bool durable) const {
  NodeDir d = open_node_dir(dir_, false);
  if (!d.fd.valid()) throw Error(Errc::not_found, no_node(node_, dir_));
  const fs::path dst = dir_ / name, tmp = dir_ / (name + ".tmp");
  // A leftover goes first: a writer that died, or a symlink someone planted
  // (unlinking a symlink removes the link, not its target).
  if (::unlinkat(d.fd.get(), tmp.filename().c_str(), 0) != 0 && errno != ENOENT)
    throw_errno(errno, "removing " + tmp.string());
  UniqueFd fd = open_in(d, tmp, O_WRONLY | O_CREAT | O_EXCL, 0600);
  if (!fd.valid()) throw_errno(ENOENT, "creating " + tmp.string());
  write_all(fd.get(), text, tmp);
  if (durable && ::fsync(fd.get()) != 0) throw_errno(errno, "syncing " + tmp.string());
  fd.reset();
  if (::renameat(d.fd.get(), tmp.filename().c_str(), d.fd.get(), dst.filename().c_str()) != 0)
    throw_errno(errno, "replacing " + dst.string());
  // The rename is durable only once the directory is synced too. A failure
  // here leaves the new file in place, so it does not fail the operation.
  if (durable) ::fsync(d.fd.get());
}

void StateStore::save_journal(const Journal& j) const { write_file("journal.json", to_json(j).dump() + "\n", false); }

std::optional<Journal> StateStore::load_journal() const {
  const fs::path file = dir_ / "journal.json";
  auto text = read_file("journal.json");
  if (!text) return std::nullopt;
  return reading(file, [&] {
    Journal j = journal_from(json::parse(*text));
    validate_journal(j);
    return j;
  });
}

void StateStore::remove_journal() const {
  NodeDir d = open_node_dir(dir_, false);
  if (d.fd.valid() && ::unlinkat(d.fd.get(), "journal.json", 0) != 0 && errno != ENOENT)
    throw_errno(errno, "removing " + (dir_ / "journal.json").string());
}

std::optional<std::string> StateStore::read_file(std::string_view name) const {
  const fs::path file = dir_ / name;
  NodeDir d = open_node_dir(dir_, false);
  // O_NONBLOCK: a FIFO planted here must not hang us before it is refused.
  UniqueFd fd = d.fd.valid() ? open_in(d, file, O_RDONLY | O_NONBLOCK) : UniqueFd();
  if (!fd.valid()) return std::nullopt;
  return read_all(fd.get(), file);
}

bool StateStore::update_file(std::string_view name,
                             const std::function<std::string(const std::optional<std::string>&)>& update) const {
  const fs::path file = dir_ / name, lock_path = dir_ / (std::string(name) + ".lock");
  NodeDir d = open_node_dir(dir_, false);
  if (!d.fd.valid()) return false;
  UniqueFd lock = open_in(d, lock_path, O_RDWR | O_CREAT, 0600);
  if (!lock.valid()) throw_errno(ENOENT, "opening lock " + lock_path.string());
  while (::flock(lock.get(), LOCK_EX) != 0)
    if (errno != EINTR) throw_errno(errno, "locking " + lock_path.string());
  std::optional<std::string> old;
  if (UniqueFd fd = open_in(d, file, O_RDONLY | O_NONBLOCK); fd.valid()) old = read_all(fd.get(), file);
  write_file(std::string(name), update(old), false);
  return true;
}

void StateStore::remove() const {
  on_disk_.reset();
  NodeDir d = open_node_dir(dir_, false);
  if (!d.fd.valid()) return;
  // Only files live here (lock, state.json, a temp file): unlinked through
  // the directory's fd, so nothing outside it can be reached.
  for (const std::string& name : names_in(d, dir_))
    if (::unlinkat(d.fd.get(), name.c_str(), 0) != 0 && errno != ENOENT)
      throw_errno(errno, "removing " + (dir_ / name).string());
  if (::unlinkat(d.root.get(), dir_.filename().c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT)
    throw_errno(errno, "removing " + dir_.string());
}

}  // namespace ebpfnet
