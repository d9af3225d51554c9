// Every way a runtime or a config can be wrong: the spec's error code, a
// message that says what is wrong, and nothing half-made on the node or in
// the container.
#include <gtest/gtest.h>

#include <fstream>

#include "cni_harness.hpp"
#include "ebpfnet/probe.hpp"

namespace ebpfnet {
namespace {

using namespace test;

// A node, a network on it and a container that a failed ADD must leave as
// they were.
struct Scene {
  SandboxNode sb;
  CniNet net{sb};
  Container c;

  explicit Scene(const std::string& cidr = "10.240.0.0/24") : sb(cidr) {}
  CniReply add_with(const json& conf) { return net.call("ADD", c.attachment(), conf); }
  CniReply add_raw(const std::string& input) {
    Attachment a = c.attachment();
    return cni_exec({"CNI_COMMAND=ADD", "CNI_CONTAINERID=" + a.id, "CNI_NETNS=" + a.netns,
                     "CNI_IFNAME=eth0"},
                    input);
  }
  void expect_nothing_made() {
    expect_node_empty(sb);
    EXPECT_TRUE(links_besides_lo(c.netns()).empty());
  }
};

TEST(CniBadInput, MalformedJson) {
  EBPFNET_REQUIRE_ROOT();
  Scene s;
  expect_cni_error(s.add_raw(R"({"cniVersion": "1.0.0", "name": )"), 6, "not valid JSON");
  expect_cni_error(s.add_raw(R"(["not", "an", "object"])"), 6, "not a JSON object");
  expect_cni_error(s.add_raw(""), 6, "not valid JSON");
  s.expect_nothing_made();
}

TEST(CniBadInput, UnsupportedOrMissingCniVersion) {
  EBPFNET_REQUIRE_ROOT();
  Scene s;
  for (const char* v : {"0.3.1", "2.0.0"}) {
    json conf = s.net.conf();
    conf["cniVersion"] = v;
    expect_cni_error(s.add_with(conf), 1, std::string("cniVersion ") + v + " is not supported");
  }
  json conf = s.net.conf();
  conf.erase("cniVersion");
  expect_cni_error(s.add_with(conf), 7, "\"cniVersion\" is missing");
  s.expect_nothing_made();
}

TEST(CniBadInput, MissingOrRelativeNetnsOnAdd) {
  EBPFNET_REQUIRE_ROOT();
  Scene s;
  Attachment a = s.c.attachment();
  a.netns = "";
  expect_cni_error(s.net.add(a), 4, "CNI_NETNS is not set");
  a.netns = s.c.name();
  expect_cni_error(s.net.add(a), 4, "is not an absolute path");
  s.expect_nothing_made();
}

TEST(CniBadInput, NetnsPathThatDoesNotExist) {
  EBPFNET_REQUIRE_ROOT();
  Scene s;
  Attachment a = s.c.attachment();
  a.netns = netns::path_of(unique("gone"));
  expect_cni_error(s.net.add(a), 3, "does not exist");
  a.netns = "/proc/999999999/ns/net";
  expect_cni_error(s.net.add(a), 3, "does not exist");
  s.expect_nothing_made();
}

TEST(CniBadInput, NetnsPathThatIsNotANamespace) {
  EBPFNET_REQUIRE_ROOT();
  Scene s;
  Attachment a = s.c.attachment();
  a.netns = (s.sb.env().state_root / "plain-file").string();
  std::ofstream(a.netns) << "not a namespace\n";
  expect_cni_error(s.net.add(a), 4, "is not a network namespace");
  s.expect_nothing_made();
}

TEST(CniBadInput, InterfaceNameAlreadyInTheContainer) {
  EBPFNET_REQUIRE_ROOT();
  Scene s;
  CmdResult ip =
      run({"ip", "-n", s.c.name(), "link", "add", "eth0", "type", "veth", "peer", "name", "other"},
          "", 10);
  ASSERT_EQ(ip.code, 0) << ip.err;
  expect_cni_error(s.net.add(s.c.attachment()), 104, "interface eth0 already exists");
  expect_node_empty(s.sb);
  EXPECT_EQ(links_besides_lo(s.c.netns()), (std::vector<std::string>{"eth0", "other"}));
}

TEST(CniBadInput, ExhaustedSubnet) {
  EBPFNET_REQUIRE_ROOT();
  Scene s("10.240.0.0/30");  // one usable address
  Container first;
  ASSERT_EQ(s.net.add(first.attachment()).code, 0);
  expect_cni_error(s.net.add(s.c.attachment()), 105, "exhausted");
  EXPECT_TRUE(links_besides_lo(s.c.netns()).empty());
  EXPECT_EQ(s.sb.node().endpoints().size(), 1u);
  EXPECT_EQ(s.net.del(first.attachment()).code, 0);
  s.expect_nothing_made();
}

TEST(CniBadInput, PublishedPortsNeedAnUplink) {
  EBPFNET_REQUIRE_ROOT();
  Scene s;
  json conf = s.net.conf();
  conf["runtimeConfig"] = json::parse(
      R"({"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]})");
  // The endpoint is made, the publish fails, and the ADD is taken back whole.
  expect_cni_error(s.add_with(conf), 7, "has no uplink");
  s.expect_nothing_made();
  for (const char* bad : {R"([{"hostPort": 0, "containerPort": 80}])",
                          R"([{"hostPort": 8080, "containerPort": 70000}])",
                          R"([{"hostPort": 8080, "containerPort": 80, "protocol": "sctp"}])",
                          R"([{"hostPort": 8080, "containerPort": 80, "hostIP": "10.1.1.1"}])"}) {
    conf["runtimeConfig"]["portMappings"] = json::parse(bad);
    CniReply r = s.add_with(conf);
    EXPECT_NE(r.code, 0) << bad;
    s.expect_nothing_made();
  }
  // An empty list is what runtimes pass for a container without -p.
  conf["runtimeConfig"]["portMappings"] = json::array();
  ASSERT_EQ(s.add_with(conf).code, 0);
  EXPECT_EQ(s.net.del(s.c.attachment()).code, 0);
}

TEST(CniBadInput, CniArgs) {
  EBPFNET_REQUIRE_ROOT();
  Scene s;
  Attachment a = s.c.attachment();
  for (auto [args, msg] : {std::pair{"K8S_POD_NAME=web;FOO=bar", "unknown key(s) FOO"},
                           std::pair{"IgnoreUnknown=0;FOO=bar", "unknown key(s) FOO"},
                           std::pair{"garbage", "'garbage' is not KEY=VALUE"},
                           std::pair{"IgnoreUnknown=maybe", "is not a boolean"}}) {
    a.args = args;
    expect_cni_error(s.net.add(a), 4, msg);
  }
  s.expect_nothing_made();
}

TEST(CniBadInput, EnvironmentVariables) {
  EBPFNET_REQUIRE_ROOT();
  Scene s;
  std::string conf = s.net.conf().dump(), ns = "CNI_NETNS=" + s.c.path();
  std::string id = "CNI_CONTAINERID=" + s.c.id();
  expect_cni_error(cni_exec({id, ns, "CNI_IFNAME=eth0"}, conf), 4, "CNI_COMMAND is not set");
  expect_cni_error(cni_exec({"CNI_COMMAND=FROB", id, ns, "CNI_IFNAME=eth0"}, conf), 4,
                   "CNI_COMMAND 'FROB' is unknown");
  expect_cni_error(cni_exec({"CNI_COMMAND=ADD", ns, "CNI_IFNAME=eth0"}, conf), 4,
                   "CNI_CONTAINERID is not set");
  expect_cni_error(
      cni_exec({"CNI_COMMAND=ADD", "CNI_CONTAINERID=-bad/id", ns, "CNI_IFNAME=eth0"}, conf), 4,
      "is not a valid container ID");
  expect_cni_error(cni_exec({"CNI_COMMAND=ADD", id, ns}, conf), 4, "CNI_IFNAME is not set");
  expect_cni_error(cni_exec({"CNI_COMMAND=ADD", id, ns, "CNI_IFNAME=much-too-long-name"}, conf), 4,
                   "1-15 characters");
  // DEL needs no namespace, but still a container and an interface.
  expect_cni_error(cni_exec({"CNI_COMMAND=DEL", id}, conf), 4, "CNI_IFNAME is not set");
  s.expect_nothing_made();
}

TEST(CniBadInput, ConfigThatDoesNotFitTheNode) {
  EBPFNET_REQUIRE_ROOT();
  Scene s;
  auto with = [&](const char* key, json value) {
    json conf = s.net.conf();
    conf[key] = value;
    return s.add_with(conf);
  };
  expect_cni_error(with("subnet", "10.99.0.0/24"), 7, "is not the pool of node");
  expect_cni_error(with("subnet", "10.99.0.1/24"), 7, "is not an IPv4 prefix");
  expect_cni_error(with("node", unique("tn")), 7, "does not exist");
  expect_cni_error(with("node", "../etc"), 7, "node name");
  expect_cni_error(with("stateDir", "relative/dir"), 7, "must be an absolute path");
  expect_cni_error(with("logLevel", "loud"), 7, "\"logLevel\"");
  expect_cni_error(with("dns", "8.8.8.8"), 7, "\"dns\" must be an object");
  expect_cni_error(with("name", ""), 7, "\"name\" is missing");
  s.expect_nothing_made();
  // The node's own pool, given explicitly, is fine.
  ASSERT_EQ(with("subnet", "10.240.0.0/24").code, 0);
  EXPECT_EQ(s.net.del(s.c.attachment()).code, 0);
}

TEST(CniBadInput, SecondAddOfTheSameAttachment) {
  EBPFNET_REQUIRE_ROOT();
  Scene s;
  CniReply first = s.net.add(s.c.attachment());
  ASSERT_EQ(first.code, 0) << first.out;
  // Again into the same namespace (a runtime retrying an ADD it killed):
  // answered with the same result, nothing made twice.
  CniReply again = s.net.add(s.c.attachment());
  ASSERT_EQ(again.code, 0) << again.out << again.err;
  EXPECT_EQ(again.result()["ips"], first.result()["ips"]);
  EXPECT_EQ(again.result()["interfaces"], first.result()["interfaces"]);
  // The same container ID and interface in another namespace is refused.
  Container elsewhere;
  Attachment moved = elsewhere.attachment();
  moved.id = s.c.id();
  expect_cni_error(s.net.add(moved), 104, "in another network namespace");
  EXPECT_TRUE(links_besides_lo(elsewhere.netns()).empty());
  // The first attachment is untouched and still works.
  auto rec = endpoint_of(s.sb, s.c.attachment());
  ASSERT_TRUE(rec);
  EXPECT_EQ(s.sb.node().endpoints().size(), 1u);
  ProbeResult p = probe_icmp(s.sb.node().netns(), rec->ip);
  EXPECT_TRUE(p.ok) << p.error;
  EXPECT_EQ(s.net.del(s.c.attachment()).code, 0);
  s.expect_nothing_made();
}

}  // namespace
}  // namespace ebpfnet
