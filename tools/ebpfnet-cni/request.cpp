// What a runtime passes: CNI_* environment variables and the network config.
#include <algorithm>
#include <cstdlib>
#include <set>

#include "cni.hpp"
#include "ebpfnet/names.hpp"

namespace ebpfnet::cni {
namespace {

std::string getenv_str(const char* key) {
  const char* v = std::getenv(key);
  return v ? v : "";
}

// The spec's container ID: an alphanumeric, then alphanumerics, '_', '.', '-'.
void check_container_id(const std::string& id) {
  auto alnum = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
  };
  if (id.empty()) throw CniError(kInvalidEnv, "CNI_CONTAINERID is not set");
  bool ok = alnum(id[0]);
  for (char c : id) ok = ok && (alnum(c) || c == '_' || c == '.' || c == '-');
  if (!ok)
    throw CniError(kInvalidEnv, "CNI_CONTAINERID '" + id + "' is not a valid container ID",
                   "it must start with a letter or digit, then letters, digits, '_', '.', '-'");
}

// The state store records what it is given as JSON text, which holds only
// UTF-8: a path or name that is not is refused before anything is made.
void check_utf8(const char* var, const std::string& value) {
  if (valid_utf8(value) != value)
    throw CniError(kInvalidEnv, std::string(var) + " '" + value + "' is not valid UTF-8");
}

void check_ifname(const std::string& ifname) {
  if (ifname.empty()) throw CniError(kInvalidEnv, "CNI_IFNAME is not set");
  check_utf8("CNI_IFNAME", ifname);
  try {
    validate_ifname(ifname);
  } catch (const Error& e) {
    throw CniError(kInvalidEnv, std::string("CNI_IFNAME: ") + e.what());
  }
}

// CNI_ARGS is "K1=V1;K2=V2". Keys this plugin does not know are an error
// unless IgnoreUnknown is true, as with the reference plugins; runtimes
// pass K8S_POD_* with IgnoreUnknown=1.
void read_args(const std::string& text, Invocation& inv) {
  static const std::set<std::string> known = {"IgnoreUnknown", "K8S_POD_NAMESPACE", "K8S_POD_NAME",
                                              "K8S_POD_INFRA_CONTAINER_ID", "K8S_POD_UID"};
  std::string unknown, pod_ns, pod_name;
  bool ignore_unknown = false;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = std::min(text.find(';', pos), text.size());
    std::string item = text.substr(pos, end - pos);
    pos = end + 1;
    if (item.empty()) continue;
    size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0)
      throw CniError(kInvalidEnv, "CNI_ARGS: '" + item + "' is not KEY=VALUE", "CNI_ARGS=" + text);
    std::string key = item.substr(0, eq), value = item.substr(eq + 1);
    if (key == "IgnoreUnknown") {
      if (value == "1" || value == "true" || value == "True" || value == "TRUE")
        ignore_unknown = true;
      else if (value != "0" && value != "false" && value != "False" && value != "FALSE")
        throw CniError(kInvalidEnv, "CNI_ARGS: IgnoreUnknown='" + value + "' is not a boolean");
    } else if (key == "K8S_POD_NAMESPACE") {
      pod_ns = value;
    } else if (key == "K8S_POD_NAME") {
      pod_name = value;
    } else if (!known.count(key)) {
      unknown += (unknown.empty() ? "" : ", ") + key;
    }
  }
  if (!unknown.empty() && !ignore_unknown)
    throw CniError(kInvalidEnv, "CNI_ARGS: unknown key(s) " + unknown,
                   "ebpfnet-cni uses none of them; add IgnoreUnknown=1 to CNI_ARGS to pass them");
  if (!pod_name.empty()) inv.pod = pod_ns.empty() ? pod_name : pod_ns + "/" + pod_name;
}

std::optional<std::string> opt_string(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (!it->is_string())
    throw CniError(kInvalidConfig, std::string("network config: \"") + key + "\" must be a string");
  return it->get<std::string>();
}

const json* opt_object(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return nullptr;
  if (!it->is_object())
    throw CniError(kInvalidConfig,
                   std::string("network config: \"") + key + "\" must be an object");
  return &*it;
}

std::filesystem::path absolute_path(const json& j, const char* key, std::filesystem::path dflt) {
  auto v = opt_string(j, key);
  if (!v) return dflt;
  if (v->empty() || (*v)[0] != '/')
    throw CniError(kInvalidConfig,
                   std::string("network config: \"") + key + "\" must be an absolute path");
  return *v;
}

Ipv4Cidr parse_subnet(const std::string& s) {
  auto c = Ipv4Cidr::parse(s);
  if (!c)
    throw CniError(kInvalidConfig, "network config: \"subnet\" '" + s +
                                       "' is not an IPv4 prefix such as 10.240.0.0/24");
  if (c->prefix < 8 || c->prefix > 30)
    throw CniError(kInvalidConfig, "network config: \"subnet\" " + s + " must be /8 to /30");
  return *c;
}

// GC's list of attachments to keep. libcni also sends the older key
// "cni.dev/attachments" with the same value.
std::vector<ContainerRef> read_attachments(const json& j) {
  auto it = j.find("cni.dev/valid-attachments");
  if (it == j.end()) it = j.find("cni.dev/attachments");
  std::vector<ContainerRef> out;
  if (it == j.end() || it->is_null()) return out;
  const char* bad = "network config: \"cni.dev/valid-attachments\" must be a list of "
                    "{\"containerID\", \"ifname\"}";
  if (!it->is_array()) throw CniError(kInvalidConfig, bad);
  for (const auto& a : *it) {
    if (!a.is_object()) throw CniError(kInvalidConfig, bad);
    auto id = opt_string(a, "containerID"), ifname = opt_string(a, "ifname");
    if (!id || !ifname) throw CniError(kInvalidConfig, bad);
    out.push_back({*id, *ifname});
  }
  return out;
}

}  // namespace

Invocation read_invocation() {
  static const std::set<std::string> verbs = {"ADD", "DEL", "CHECK", "VERSION", "STATUS", "GC"};
  Invocation inv;
  inv.command = getenv_str("CNI_COMMAND");
  if (!verbs.count(inv.command))
    throw CniError(kInvalidEnv,
                   inv.command.empty() ? "CNI_COMMAND is not set"
                                       : "CNI_COMMAND '" + inv.command + "' is unknown",
                   "one of ADD, DEL, CHECK, VERSION, STATUS, GC");
  if (inv.command != "ADD" && inv.command != "DEL" && inv.command != "CHECK") return inv;

  inv.container_id = getenv_str("CNI_CONTAINERID");
  check_container_id(inv.container_id);
  inv.ifname = getenv_str("CNI_IFNAME");
  check_ifname(inv.ifname);
  inv.netns = getenv_str("CNI_NETNS");
  // DEL needs neither the namespace nor the extra arguments: it cleans up from
  // what ADD recorded, and must not fail on what it does not use.
  if (inv.command == "DEL") return inv;
  if (inv.netns.empty())
    throw CniError(kInvalidEnv, "CNI_NETNS is not set: " + inv.command +
                                    " needs the container's network namespace");
  if (inv.netns[0] != '/')
    throw CniError(kInvalidEnv, "CNI_NETNS '" + inv.netns + "' is not an absolute path",
                   "e.g. /run/netns/NAME or /proc/PID/ns/net");
  check_utf8("CNI_NETNS", inv.netns);
  read_args(getenv_str("CNI_ARGS"), inv);
  return inv;
}

ebpfnet::Env NetConf::env() const {
  ebpfnet::Env e;
  e.state_root = state_dir;
  return e;
}

json parse_json(std::string_view text) {
  constexpr int kMaxDepth = 64;
  auto depth_limit = [](int depth, json::parse_event_t, json&) {
    if (depth > kMaxDepth)
      throw CniError(kDecodeFailure, "the network config on stdin nests deeper than " +
                                         std::to_string(kMaxDepth) + " levels");
    return true;
  };
  try {
    return json::parse(text, depth_limit);
  } catch (const json::parse_error& e) {
    throw CniError(kDecodeFailure, "the network config on stdin is not valid JSON", e.what());
  }
}

NetConf parse_config(std::string_view text) {
  json j = parse_json(text);
  if (!j.is_object())
    throw CniError(kDecodeFailure, "the network config on stdin is not a JSON object");

  NetConf c;
  c.cni_version = opt_string(j, "cniVersion").value_or("");
  if (c.cni_version.empty())
    throw CniError(kInvalidConfig, "network config: \"cniVersion\" is missing");
  if (!supported(c.cni_version)) {
    std::string list;
    for (auto v : kVersions) list += (list.empty() ? "" : ", ") + std::string(v);
    throw CniError(kIncompatibleVersion, "cniVersion " + c.cni_version +
                                             " is not supported; ebpfnet-cni speaks " + list);
  }
  c.name = opt_string(j, "name").value_or("");
  if (c.name.empty()) throw CniError(kInvalidConfig, "network config: \"name\" is missing");

  c.node = opt_string(j, "node").value_or(kRootNode);
  try {
    validate_name("node", c.node);
  } catch (const Error& e) {
    throw CniError(kInvalidConfig, std::string("network config: ") + e.what());
  }
  if (auto s = opt_string(j, "subnet")) c.subnet = parse_subnet(*s);
  c.state_dir = absolute_path(j, "stateDir", c.state_dir);
  c.log_file = absolute_path(j, "logFile", c.log_file);
  c.log_level = opt_string(j, "logLevel").value_or(c.log_level);
  static const std::set<std::string> levels = {"trace", "debug", "info", "warn", "error", "off"};
  if (!levels.count(c.log_level))
    throw CniError(kInvalidConfig, "network config: \"logLevel\" '" + c.log_level +
                                       "' is not one of trace, debug, info, warn, error, off");

  if (const json* dns = opt_object(j, "dns")) c.dns = *dns;
  if (const json* prev = opt_object(j, "prevResult")) c.prev_result = *prev;
  if (const json* rc = opt_object(j, "runtimeConfig")) {
    auto pm = rc->find("portMappings");
    if (pm != rc->end() && !pm->is_null()) {
      if (!pm->is_array())
        throw CniError(kInvalidConfig, "runtimeConfig: \"portMappings\" must be a list");
      c.port_mappings = *pm;
    }
  }
  c.valid_attachments = read_attachments(j);
  return c;
}

std::string sniff_version(std::string_view text) {
  try {
    json j = parse_json(text);
    auto it = j.find("cniVersion");
    if (it != j.end() && it->is_string() && supported(it->get<std::string>()))
      return it->get<std::string>();
  } catch (const CniError&) {
    // An unreadable config: its error reply uses the newest version.
  }
  return std::string(kLatestVersion);
}

}  // namespace ebpfnet::cni
