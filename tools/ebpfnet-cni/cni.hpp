// ebpfnet-cni: the CNI plugin. A runtime runs it once per operation with
// CNI_* in the environment and the network config on stdin; stdout carries
// only the result or the spec's error JSON, logs go to a file.
#pragma once

#include <array>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "ebpfnet/error.hpp"
#include "ebpfnet/ipv4.hpp"
#include "ebpfnet/node.hpp"

namespace ebpfnet::cni {

using nlohmann::json;

// Spec versions spoken: 0.4.0 (CHECK) up to 1.1.0 (STATUS, GC).
inline constexpr std::array<std::string_view, 3> kVersions = {"0.4.0", "1.0.0", "1.1.0"};
inline constexpr std::string_view kLatestVersion = "1.1.0";
bool supported(std::string_view version);

// The spec's well-known error codes, and ours (100 + the `ebpfnet` exit
// code) where it has none. docs/cni.md, "Error codes", is the table.
enum Code : int {
  kIncompatibleVersion = 1,
  kUnsupportedField = 2,
  kUnknownContainer = 3,
  kInvalidEnv = 4,
  kIoFailure = 5,
  kDecodeFailure = 6,
  kInvalidConfig = 7,
  kNotAvailable = 50,         // STATUS: ADD would fail
  kNotAvailableLimited = 51,  // STATUS: existing containers may have lost connectivity
  kNotFound = 103,
  kInUse = 104,
  kPoolExhausted = 105,
  kEnvironment = 106,  // not root, no bpffs, or a kernel feature missing
  kCheckFailed = 110,  // CHECK: the attachment is not what ADD made
  kInternal = 999,
};

class CniError : public std::runtime_error {
 public:
  CniError(int code, const std::string& msg, std::string details = "")
      : std::runtime_error(msg), code_(code), details_(std::move(details)) {}
  int code() const { return code_; }
  const std::string& details() const { return details_; }

 private:
  int code_;
  std::string details_;
};

// The CNI error an ebpfnet error becomes; details says what was being done.
CniError from_ebpfnet(const Error& e, const std::string& details);
json error_json(std::string_view cni_version, const CniError& e);

// JSON as stdout carries it. Invalid UTF-8 (from CNI_*, or quoted by a
// parse error) is replaced, never a reason to fail: the runtime must get
// its reply whatever bytes it passed.
std::string to_text(const json& j);
// s with each invalid UTF-8 sequence replaced by U+FFFD.
std::string valid_utf8(std::string_view s);

// What the runtime put in the environment.
struct Invocation {
  std::string command;       // CNI_COMMAND
  std::string container_id;  // CNI_CONTAINERID
  std::string netns;         // CNI_NETNS: a path; may be empty on DEL
  std::string ifname;        // CNI_IFNAME
  std::string pod;           // "namespace/name" from CNI_ARGS, for the log only

  ContainerRef container() const { return {container_id, ifname}; }
};

// Reads and checks CNI_* for the command (kInvalidEnv when wrong).
Invocation read_invocation();

// The network config: a plugin entry of a conflist with cniVersion and name
// injected, or a single network config.
struct NetConf {
  std::string cni_version;
  std::string name;
  std::string node = kRootNode;
  std::optional<Ipv4Cidr> subnet;
  std::filesystem::path state_dir = "/var/lib/ebpfnet";
  std::filesystem::path log_file = "/var/log/ebpfnet-cni.log";
  std::string log_level = "info";
  json dns;            // passed to the result as given; null when absent
  json port_mappings;  // runtimeConfig.portMappings; null when absent
  json prev_result;    // chained result; null when absent
  std::vector<ContainerRef> valid_attachments;  // GC

  ebpfnet::Env env() const;
};

// stdin as JSON: kDecodeFailure when it is not JSON or nests deeper than
// any config needs (copying a deeper value would overflow the stack).
json parse_json(std::string_view text);
NetConf parse_config(std::string_view text);
// The cniVersion of a config that may be unreadable: what an error reply uses.
std::string sniff_version(std::string_view text);

// The endpoint a container's interface becomes: a valid ebpfnet name,
// readable in `ebpfnet endpoint list`, and unique per (container, ifname).
std::string endpoint_name(const ContainerRef& c);

// The ADD result: prevResult's entries, then this plugin's.
json make_result(const NetConf& conf, const Invocation& inv, const EndpointRecord& rec,
                 Ipv4 gateway, const std::string& node_sandbox);

// Logging to conf.log_file (never stdout); the default logger after this.
void start_log(const NetConf& conf);

// The verbs. ADD prints the result to out; the others print nothing.
void cmd_add(const Invocation& inv, const NetConf& conf, std::ostream& out);
void cmd_del(const Invocation& inv, const NetConf& conf);
void cmd_check(const Invocation& inv, const NetConf& conf);
void cmd_status(const NetConf& conf);
void cmd_gc(const NetConf& conf);
void cmd_version(std::string_view stdin_text, std::ostream& out);

}  // namespace ebpfnet::cni
