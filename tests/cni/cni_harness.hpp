// Drives the built ebpfnet-cni exactly as a container runtime does: CNI_*
// in a clean environment, the network config on stdin, the result or the
// error on stdout, the exit code. Plus stand-ins for containers and checks
// of the spec's shapes and of what a node has left.
#pragma once

#include <sys/types.h>

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "support.hpp"

namespace ebpfnet::test {

using nlohmann::json;

struct CniReply {
  int code = -1;  // exit code
  std::string out, err;
  json result() const;  // stdout as JSON; null when it is not
};

// Runs the plugin with exactly these environment variables (KEY=VALUE), a
// PATH, and stdin; killed after timeout_s seconds.
CniReply cni_exec(const std::vector<std::string>& env, const std::string& input,
                  int timeout_s = 30);

// One attachment as the runtime names it.
struct Attachment {
  std::string id;      // CNI_CONTAINERID
  std::string netns;   // CNI_NETNS
  std::string ifname = "eth0";
  std::string args;    // CNI_ARGS
};

// A 64-character container ID, as runtimes make, unique per run.
std::string container_id();

// A container's network namespace, made by "the runtime" (the test), never
// by the plugin; removed on every exit path.
class Container {
 public:
  Container();
  ~Container();
  Container(const Container&) = delete;
  Container& operator=(const Container&) = delete;

  const std::string& id() const { return id_; }
  const std::string& name() const { return name_; }
  std::string path() const;  // /run/netns/NAME
  Netns netns() const;
  Attachment attachment(const std::string& ifname = "eth0") const {
    return {id_, path(), ifname, ""};
  }
  void remove();  // the runtime tears the namespace down now

 private:
  std::string id_, name_;
};

// A container known only by its process: CNI_NETNS=/proc/PID/ns/net. The
// process is killed (by its PID) on every exit path.
class ProcContainer {
 public:
  ProcContainer();
  ~ProcContainer();
  ProcContainer(const ProcContainer&) = delete;
  ProcContainer& operator=(const ProcContainer&) = delete;

  const std::string& id() const { return id_; }
  std::string path() const { return "/proc/" + std::to_string(pid_) + "/ns/net"; }
  Netns netns() const { return Netns::open_pid(pid_); }
  Attachment attachment() const { return {id_, path(), "eth0", ""}; }
  void stop();  // the process exits and its namespace goes with it

 private:
  std::string id_;
  pid_t pid_ = -1;
};

// A CNI network on a sandbox node: the plugin entry of a conflist with
// cniVersion and name injected, state and log in the node's private directory.
class CniNet {
 public:
  explicit CniNet(const SandboxNode& sb, std::string version = "1.0.0");

  json conf() const;
  const std::string& name() const { return name_; }
  std::string log() const;

  // extra_env: more KEY=VALUE for the plugin (EBPFNET_FAILPOINT).
  CniReply call(const std::string& verb, const Attachment& a, const json& conf,
                const std::vector<std::string>& extra_env = {}) const;
  CniReply add(const Attachment& a) const { return call("ADD", a, conf()); }
  CniReply del(const Attachment& a) const { return call("DEL", a, conf()); }
  CniReply check(const Attachment& a, const json& prev_result) const;
  // STATUS and GC take no container.
  CniReply node_call(const std::string& verb, const json& conf) const;

 private:
  std::string node_, version_, name_;
  std::filesystem::path state_;
};

// The spec's ADD result: the keys it allows, interfaces, ips pointing at
// them, routes, dns. Non-fatal expectations.
void expect_spec_result(const json& r, const std::string& version);
// An error reply: non-zero exit, the spec's error JSON with this code, and
// a message that contains msg_part.
void expect_cni_error(const CniReply& r, int code, const std::string& msg_part);

// The record of a container's endpoint, if the node has one.
std::optional<EndpointRecord> endpoint_of(SandboxNode& sb, const Attachment& a);
// Nothing of any endpoint is left on the node: state, veths, map entries,
// conntrack flows, link pins.
void expect_node_empty(SandboxNode& sb);
// The interfaces of a namespace other than lo.
std::vector<std::string> links_besides_lo(const Netns& ns);

}  // namespace ebpfnet::test
