// Every verb driven as a runtime drives it, against sandbox nodes: the
// result's shape, what the container really has, traffic beside endpoints
// of the command line, CHECK, DEL in all its forms, STATUS, GC, VERSION and
// chaining.
#include <gtest/gtest.h>

#include "cni_harness.hpp"
#include "ebpfnet/netlink.hpp"
#include "ebpfnet/probe.hpp"

namespace ebpfnet {
namespace {

using namespace test;

// The address ebpfnet-cni reported: its own entry is the last one.
Ipv4 address_in(const json& result) {
  std::string a = result.at("ips").back().at("address");
  return *Ipv4::parse(a.substr(0, a.find('/')));
}

bool has_route(const std::vector<Route>& routes, Ipv4Cidr dst, std::optional<Ipv4> via) {
  for (const auto& r : routes)
    if (r.dst == dst && r.via == via) return true;
  return false;
}

TEST(CniVerbs, VersionAnswersEveryTimeWithOrWithoutConfig) {
  for (int i = 0; i < 10; ++i) {
    bool with_conf = i % 2 == 0;
    CniReply r = cni_exec({"CNI_COMMAND=VERSION"}, with_conf ? R"({"cniVersion":"0.4.0"})" : "");
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    json j = r.result();
    EXPECT_EQ(j["cniVersion"], with_conf ? "0.4.0" : "1.1.0");
    EXPECT_EQ(j["supportedVersions"], json({"0.4.0", "1.0.0", "1.1.0"}));
  }
}

TEST(CniVerbs, AddResultIsTheSpecsAndTheContainerHasIt) {
  EBPFNET_REQUIRE_ROOT();
  SandboxNode sb;
  CniNet net(sb);
  Container c;
  json conf = net.conf();
  conf["dns"] = {{"nameservers", {"10.240.0.53"}}, {"search", {"svc.example.test"}}};
  CniReply r = net.call("ADD", c.attachment(), conf);
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  json res = r.result();
  expect_spec_result(res, "1.0.0");
  EXPECT_EQ(res["dns"], conf["dns"]);
  ASSERT_EQ(res["interfaces"].size(), 2u) << res;
  json eth = res["interfaces"][1];
  EXPECT_EQ(eth["name"], "eth0");
  EXPECT_EQ(eth["sandbox"], c.path());
  EXPECT_EQ(res["interfaces"][0]["sandbox"], netns::path_of(sb.name()));
  ASSERT_EQ(res["ips"].size(), 1u);
  EXPECT_EQ(res["ips"][0]["interface"], 1);
  EXPECT_EQ(res["ips"][0]["gateway"], "10.240.0.1");
  EXPECT_EQ(res["routes"], json::parse(R"([{"dst":"0.0.0.0/0","gw":"10.240.0.1"}])"));

  // What the container really has, over netlink in its namespace...
  Ipv4 ip = address_in(res), gw = *Ipv4::parse("10.240.0.1");
  Netlink nl = Netlink::in(c.netns());
  auto link = nl.link("eth0");
  ASSERT_TRUE(link);
  EXPECT_TRUE(link->up);
  EXPECT_EQ(mac_str(link->mac), eth["mac"]);
  auto addrs = nl.addresses(link->ifindex);
  ASSERT_EQ(addrs.size(), 1u);
  EXPECT_EQ(addrs[0].ip, ip);
  EXPECT_EQ(addrs[0].prefix, 32);
  auto routes = nl.routes(link->ifindex);
  EXPECT_TRUE(has_route(routes, {Ipv4(0), 0}, gw));
  EXPECT_TRUE(has_route(routes, {gw, 32}, std::nullopt));
  // ...and as iproute2, an independent witness, sees it.
  CmdResult ipr = run({"ip", "-n", c.name(), "-4", "route", "show", "default"}, "", 10);
  EXPECT_NE(ipr.out.find("default via 10.240.0.1 dev eth0"), std::string::npos) << ipr.out;

  // The node lists it beside hand-made endpoints, recorded with its container.
  auto rec = endpoint_of(sb, c.attachment());
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->netns, c.path());
  EXPECT_FALSE(rec->netns_owned);
  EXPECT_EQ(rec->cni_network, net.name());
  CmdResult list = sb.cli({"-o", "json", "endpoint", "list"});
  ASSERT_EQ(list.code, 0) << list.err;
  json eps = json::parse(list.out);
  ASSERT_EQ(eps.size(), 1u) << eps;
  EXPECT_EQ(eps[0]["name"], rec->name);
  EXPECT_EQ(eps[0]["ip"], ip.str());
  ProbeResult p = probe_icmp(sb.node().netns(), ip);
  EXPECT_TRUE(p.ok) << p.error;
  EXPECT_NE(net.log().find("ADD network " + net.name()), std::string::npos) << net.log();

  CniReply del = net.del(c.attachment());
  EXPECT_EQ(del.code, 0) << del.out;
  expect_node_empty(sb);
}

TEST(CniVerbs, AddAttachesTheNodeDatapathOnFirstUse) {
  EBPFNET_REQUIRE_ROOT();
  SandboxNode sb("10.240.0.0/24", /*attach=*/false);
  ASSERT_FALSE(Datapath::open_pinned(sb.node().pin_dir()));
  CniNet net(sb);
  Container c;
  CniReply r = net.add(c.attachment());
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(Datapath::open_pinned(sb.node().pin_dir()));
  EXPECT_NE(net.log().find("datapath not attached yet; attaching"), std::string::npos) << net.log();
  ProbeResult p = probe_icmp(sb.node().netns(), address_in(r.result()));
  EXPECT_TRUE(p.ok) << p.error;
  EXPECT_EQ(net.del(c.attachment()).code, 0);
}

TEST(CniVerbs, ContainersTalkToEachOtherAndToCliEndpoints) {
  EBPFNET_REQUIRE_ROOT();
  SandboxNode sb;
  CniNet net(sb);
  Container a;      // CNI_NETNS=/run/netns/NAME
  ProcContainer b;  // CNI_NETNS=/proc/PID/ns/net
  CniReply ra = net.add(a.attachment()), rb = net.add(b.attachment());
  ASSERT_EQ(ra.code, 0) << ra.out;
  ASSERT_EQ(rb.code, 0) << rb.out;
  std::string hand = unique("te");
  CmdResult cli = sb.cli({"endpoint", "add", hand});
  ASSERT_EQ(cli.code, 0) << cli.err;
  Ipv4 ipa = address_in(ra.result()), ipb = address_in(rb.result()), ipe;
  for (const auto& v : sb.node().endpoints())
    if (v.rec.name == hand) ipe = v.rec.ip;

  Netns na = a.netns(), nb = b.netns(), ne = Netns::open_named(hand);
  struct Case {
    const char* what;
    ProbeResult r;
  } cases[] = {
      {"a->b tcp", probe_tcp(na, nb, ipb, 7101)}, {"b->a icmp", probe_icmp(nb, ipa)},
      {"a->cli tcp", probe_tcp(na, ne, ipe, 7102)}, {"cli->b tcp", probe_tcp(ne, nb, ipb, 7103)},
      {"b->cli icmp", probe_icmp(nb, ipe)},
  };
  for (const auto& c : cases) EXPECT_TRUE(c.r.ok) << c.what << ": " << c.r.error;

  CmdResult list = sb.cli({"-o", "json", "endpoint", "list"});
  EXPECT_EQ(json::parse(list.out).size(), 3u) << list.out;
  EXPECT_EQ(net.del(a.attachment()).code, 0);
  EXPECT_EQ(net.del(b.attachment()).code, 0);
  auto left = sb.node().endpoints();
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].rec.name, hand);
}

// A runtime's container is found in `endpoint list -o json` by its ID and
// network; an endpoint made by hand has neither.
TEST(CniVerbs, EndpointListJsonNamesTheContainer) {
  EBPFNET_REQUIRE_ROOT();
  SandboxNode sb;
  CniNet net(sb);
  Container c;
  CniReply add = net.add(c.attachment());
  ASSERT_EQ(add.code, 0) << add.out;
  std::string hand = unique("te");
  CmdResult cli = sb.cli({"endpoint", "add", hand});
  ASSERT_EQ(cli.code, 0) << cli.err;

  CmdResult list = sb.cli({"-o", "json", "endpoint", "list"});
  ASSERT_EQ(list.code, 0) << list.err;
  json eps = json::parse(list.out);
  ASSERT_EQ(eps.size(), 2u) << eps;
  auto rec = endpoint_of(sb, c.attachment());
  ASSERT_TRUE(rec);
  for (const auto& e : eps) {
    if (e["name"] == rec->name) {
      EXPECT_EQ(e["container_id"], c.id()) << e;
      EXPECT_EQ(e["cni_network"], net.name()) << e;
      EXPECT_EQ(e["ifname"], "eth0") << e;
      EXPECT_EQ(e["ip"], address_in(add.result()).str()) << e;
    } else {
      EXPECT_EQ(e["name"], hand) << e;
      EXPECT_TRUE(e["container_id"].is_null()) << e;
      EXPECT_TRUE(e["cni_network"].is_null()) << e;
    }
  }
  EXPECT_EQ(net.del(c.attachment()).code, 0);
}

TEST(CniVerbs, CheckPassesThenFailsAfterTampering) {
  EBPFNET_REQUIRE_ROOT();
  SandboxNode sb;
  CniNet net(sb);
  Container c, d;
  CniReply add = net.add(c.attachment()), add_d = net.add(d.attachment());
  ASSERT_EQ(add.code, 0) << add.out;
  ASSERT_EQ(add_d.code, 0) << add_d.out;
  CniReply ok = net.check(c.attachment(), add.result());
  EXPECT_EQ(ok.code, 0) << ok.out;
  EXPECT_TRUE(ok.out.empty()) << ok.out;

  // The container's address swapped for another one.
  Ipv4 ip = address_in(add.result());
  Netlink nl = Netlink::in(c.netns());
  auto eth = nl.link("eth0");
  ASSERT_TRUE(eth);
  nl.del_address({eth->ifindex, ip, 32});
  nl.add_address({eth->ifindex, *Ipv4::parse("10.240.0.200"), 32});
  expect_cni_error(net.check(c.attachment(), add.result()), 110,
                   "lacks its address " + ip.str() + "/32");

  // The node side: d's datapath entry gone.
  auto rec = endpoint_of(sb, d.attachment());
  ASSERT_TRUE(rec);
  Datapath::open_pinned_maps(sb.node().pin_dir())->delete_endpoint(rec->host_ifindex, rec->ip);
  expect_cni_error(net.check(d.attachment(), add_d.result()), 110, "datapath has no entry");
  // An interface ADD never made.
  expect_cni_error(net.check(c.attachment("net1"), add.result()), 110, "no endpoint");

  EXPECT_EQ(net.del(c.attachment()).code, 0);
  EXPECT_EQ(net.del(d.attachment()).code, 0);
  expect_node_empty(sb);
}

TEST(CniVerbs, DelTwiceAndDelOfWhatWasNeverAdded) {
  EBPFNET_REQUIRE_ROOT();
  SandboxNode sb;
  CniNet net(sb);
  Container c;
  ASSERT_EQ(net.add(c.attachment()).code, 0);
  for (int i = 0; i < 2; ++i) {
    CniReply del = net.del(c.attachment());
    EXPECT_EQ(del.code, 0) << del.out;
    EXPECT_TRUE(del.out.empty()) << del.out;
  }
  expect_node_empty(sb);
  // The plugin never owns the container's namespace: it is still there, bare.
  ASSERT_TRUE(netns::exists(c.name()));
  EXPECT_TRUE(links_besides_lo(c.netns()).empty());
  Container never;
  EXPECT_EQ(net.del(never.attachment()).code, 0);
  EXPECT_NE(net.log().find("nothing to remove"), std::string::npos);
  // A node that is gone has nothing to clean, and DEL makes nothing for it.
  json gone = net.conf();
  gone["node"] = unique("tn");
  EXPECT_EQ(net.call("DEL", c.attachment(), gone).code, 0);
  EXPECT_FALSE(std::filesystem::exists(sb.env().state_root / gone["node"].get<std::string>()));
}

TEST(CniVerbs, DelCleansUpWhenTheNamespaceIsGone) {
  EBPFNET_REQUIRE_ROOT();
  SandboxNode sb;
  CniNet net(sb);
  Container named;
  ProcContainer proc;
  ASSERT_EQ(net.add(named.attachment()).code, 0);
  ASSERT_EQ(net.add(proc.attachment()).code, 0);
  named.remove();  // /run/netns/NAME no longer exists
  proc.stop();     // /proc/PID/ns/net no longer exists
  CniReply d1 = net.del(named.attachment()), d2 = net.del(proc.attachment());
  EXPECT_EQ(d1.code, 0) << d1.out;
  EXPECT_EQ(d2.code, 0) << d2.out;
  expect_node_empty(sb);
}

TEST(CniVerbs, DelWithEmptyNetnsCleansUpFromTheNodeSide) {
  EBPFNET_REQUIRE_ROOT();
  SandboxNode sb;
  CniNet net(sb);
  Container c;
  ASSERT_EQ(net.add(c.attachment()).code, 0);
  Attachment a = c.attachment();
  a.netns = "";
  CniReply del = net.del(a);
  EXPECT_EQ(del.code, 0) << del.out;
  expect_node_empty(sb);
  EXPECT_TRUE(links_besides_lo(c.netns()).empty());
}

// The container's masqueraded flows go with it, though its namespace is
// not given: its address may go to the next container.
TEST(CniVerbs, DelWithEmptyNetnsRemovesTheContainersFlows) {
  EBPFNET_REQUIRE_ROOT();
  SandboxNode sb("10.240.0.0/24", true, true);
  CniNet net(sb);
  Container c;
  ASSERT_EQ(net.add(c.attachment()).code, 0);
  ProbeResult ping = probe_icmp(c.netns(), *Ipv4::parse(kSandboxServerIp));
  ASSERT_TRUE(ping.ok) << ping.error;
  ASSERT_FALSE(sb.node().conntrack().empty());
  Attachment a = c.attachment();
  a.netns = "";
  CniReply del = net.del(a);
  EXPECT_EQ(del.code, 0) << del.out;
  EXPECT_TRUE(sb.node().endpoints().empty());
  EXPECT_TRUE(sb.node().conntrack().empty()) << "the removed container's flows stay in conntrack";
}

TEST(CniVerbs, ChainedPrevResultIsPassedThrough) {
  EBPFNET_REQUIRE_ROOT();
  SandboxNode sb;
  CniNet net(sb);
  Container c;
  json prev = json::parse(R"({"cniVersion": "1.0.0",
      "interfaces": [{"name": "dummy0", "mac": "02:00:00:00:00:01"}],
      "ips": [{"address": "192.0.2.5/24", "interface": 0}],
      "routes": [{"dst": "192.0.2.0/24"}],
      "dns": {"nameservers": ["192.0.2.53"]}})");
  json conf = net.conf();
  conf["prevResult"] = prev;
  CniReply r = net.call("ADD", c.attachment(), conf);
  ASSERT_EQ(r.code, 0) << r.out;
  json res = r.result();
  expect_spec_result(res, "1.0.0");
  ASSERT_EQ(res["interfaces"].size(), 3u);
  EXPECT_EQ(res["interfaces"][0], prev["interfaces"][0]);
  ASSERT_EQ(res["ips"].size(), 2u);
  EXPECT_EQ(res["ips"][0], prev["ips"][0]);
  EXPECT_EQ(res["ips"][1]["interface"], 2);
  EXPECT_EQ(res["routes"][0], prev["routes"][0]);
  EXPECT_EQ(res["dns"], prev["dns"]);
  CniReply check = net.check(c.attachment(), res);
  EXPECT_EQ(check.code, 0) << check.out;
  conf["prevResult"] = res;
  EXPECT_EQ(net.call("DEL", c.attachment(), conf).code, 0);
}

TEST(CniVerbs, SpeaksSpec040) {
  EBPFNET_REQUIRE_ROOT();
  SandboxNode sb;
  CniNet net(sb, "0.4.0");
  Container c;
  CniReply add = net.add(c.attachment());
  ASSERT_EQ(add.code, 0) << add.out;
  expect_spec_result(add.result(), "0.4.0");
  EXPECT_EQ(net.check(c.attachment(), add.result()).code, 0);
  EXPECT_EQ(net.del(c.attachment()).code, 0);
}

TEST(CniVerbs, CniArgsWithIgnoreUnknownAndPodNames) {
  EBPFNET_REQUIRE_ROOT();
  SandboxNode sb;
  CniNet net(sb);
  Container c;
  Attachment a = c.attachment();
  a.args = "IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-0;"
           "K8S_POD_INFRA_CONTAINER_ID=" + c.id() + ";MY_RUNTIME_KEY=x";
  CniReply r = net.add(a);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(net.log().find("pod shop/web-0"), std::string::npos) << net.log();
  EXPECT_EQ(net.del(a).code, 0);
}

// ebpfnet-cni owns the container's default route, so a second interface is
// refused with why, and the first one is untouched.
TEST(CniVerbs, SecondInterfaceOfAContainerIsRefusedClearly) {
  EBPFNET_REQUIRE_ROOT();
  SandboxNode sb;
  CniNet net(sb);
  Container c;
  CniReply e0 = net.add(c.attachment("eth0"));
  ASSERT_EQ(e0.code, 0) << e0.out;
  expect_cni_error(net.add(c.attachment("net1")), 104, "already has a default route");
  EXPECT_EQ(links_besides_lo(c.netns()), std::vector<std::string>{"eth0"});
  EXPECT_EQ(sb.node().endpoints().size(), 1u);
  ProbeResult p = probe_icmp(sb.node().netns(), address_in(e0.result()));
  EXPECT_TRUE(p.ok) << p.error;
  EXPECT_EQ(net.del(c.attachment("net1")).code, 0);  // DEL of what failed: nothing to do
  EXPECT_EQ(net.del(c.attachment("eth0")).code, 0);
  expect_node_empty(sb);
}

TEST(CniVerbs, StatusSaysWhetherAnAddWouldWork) {
  EBPFNET_REQUIRE_ROOT();
  SandboxNode sb;
  CniNet net(sb);
  CniReply ok = net.node_call("STATUS", net.conf());
  EXPECT_EQ(ok.code, 0) << ok.out;
  EXPECT_TRUE(ok.out.empty()) << ok.out;
  json missing = net.conf();
  missing["node"] = unique("tn");
  expect_cni_error(net.node_call("STATUS", missing), 50, "does not exist");
  json other = net.conf();
  other["subnet"] = "10.99.0.0/24";
  expect_cni_error(net.node_call("STATUS", other), 50, "is not the pool");

  SandboxNode tiny("10.240.0.0/30");  // one usable address
  CniNet tnet(tiny);
  Container c;
  ASSERT_EQ(tnet.add(c.attachment()).code, 0);
  expect_cni_error(tnet.node_call("STATUS", tnet.conf()), 50, "no free address");
  EXPECT_EQ(tnet.del(c.attachment()).code, 0);
}

TEST(CniVerbs, GcRemovesOnlyStaleAttachmentsOfItsNetwork) {
  EBPFNET_REQUIRE_ROOT();
  SandboxNode sb;
  CniNet n1(sb), n2(sb);
  Container keep, stale, other;
  ASSERT_EQ(n1.add(keep.attachment()).code, 0);
  ASSERT_EQ(n1.add(stale.attachment()).code, 0);
  ASSERT_EQ(n2.add(other.attachment()).code, 0);
  std::string hand = unique("tg");
  ASSERT_EQ(sb.cli({"endpoint", "add", hand}).code, 0);
  auto stale_rec = endpoint_of(sb, stale.attachment());
  ASSERT_TRUE(stale_rec);

  json gc = n1.conf();
  gc["cni.dev/valid-attachments"] =
      json::array({json{{"containerID", keep.id()}, {"ifname", "eth0"}}});
  CniReply r = n1.node_call("GC", gc);
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(r.out.empty()) << r.out;
  EXPECT_TRUE(endpoint_of(sb, keep.attachment()));
  EXPECT_FALSE(endpoint_of(sb, stale.attachment()));
  EXPECT_TRUE(endpoint_of(sb, other.attachment()));
  EXPECT_EQ(sb.node().endpoints().size(), 3u);
  EXPECT_FALSE(Netlink::in(sb.node().netns()).link(stale_rec->host_ifname));
  EXPECT_TRUE(links_besides_lo(stale.netns()).empty());

  EXPECT_EQ(n1.del(keep.attachment()).code, 0);
  EXPECT_EQ(n2.del(other.attachment()).code, 0);
}

}  // namespace
}  // namespace ebpfnet

namespace ebpfnet {
namespace {

using namespace test;

// `-p 18080:8080`: the runtime's portMappings become a published port on the
// node's uplink, reachable from outside; DEL unpublishes it.
TEST(CniVerbs, PortMappingsArePublishedAndDelUnpublishes) {
  EBPFNET_REQUIRE_ROOT();
  SandboxNode sb("10.240.0.0/24", /*attach=*/true, /*uplink_sandbox=*/true);
  CniNet net(sb);
  Container c;
  json conf = net.conf();
  conf["runtimeConfig"] = json::parse(
      R"({"portMappings": [{"hostPort": 18080, "containerPort": 8080, "protocol": "tcp"}]})");
  CniReply r = net.call("ADD", c.attachment(), conf);
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  auto rec = endpoint_of(sb, c.attachment());
  ASSERT_TRUE(rec);
  auto pubs = sb.node().published();
  ASSERT_EQ(pubs.size(), 1u);
  EXPECT_EQ(pubs[0].endpoint, rec->name);
  EXPECT_EQ(pubs[0].port, 18080);
  EXPECT_EQ(pubs[0].target_port, 8080);

  Netns outside = Netns::open_named(sb.outside());
  Ipv4 uplink = *Ipv4::parse(kSandboxUplinkIp);
  ProbeResult p = probe_tcp_via(outside, uplink, 18080, c.netns(), rec->ip, 8080);
  EXPECT_TRUE(p.ok) << p.error;

  ASSERT_EQ(net.call("DEL", c.attachment(), conf).code, 0);
  EXPECT_TRUE(sb.node().published().empty());
  p = probe_tcp_via(outside, uplink, 18080, c.netns(), rec->ip, 8080, ProbeTimeout(500));
  EXPECT_FALSE(p.ok) << "still reachable after DEL";
}

// A port another container already published takes the whole ADD back.
TEST(CniVerbs, PortMappingThatIsTakenUndoesTheAdd) {
  EBPFNET_REQUIRE_ROOT();
  SandboxNode sb("10.240.0.0/24", /*attach=*/true, /*uplink_sandbox=*/true);
  CniNet net(sb);
  Container first, second;
  json conf = net.conf();
  conf["runtimeConfig"] = json::parse(R"({"portMappings": [{"hostPort": 18080, "containerPort": 80}]})");
  ASSERT_EQ(net.call("ADD", first.attachment(), conf).code, 0);
  expect_cni_error(net.call("ADD", second.attachment(), conf), 104, "already published");
  EXPECT_FALSE(endpoint_of(sb, second.attachment()));
  EXPECT_TRUE(links_besides_lo(second.netns()).empty());
  EXPECT_EQ(sb.node().published().size(), 1u);
  EXPECT_EQ(net.call("DEL", first.attachment(), conf).code, 0);
}

}  // namespace
}  // namespace ebpfnet
