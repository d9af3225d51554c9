// Connect-time balancing's reach on a sandbox node: the socket hooks hang
// at the cgroup root only while the node has a service with a virtual IP
// (and socket_lb is on), go with the last such service, the node, or
// attach --socket-lb off, and leave every socket outside the node's
// endpoints alone.
#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "ebpfnet/netns.hpp"
#include "connection.hpp"
#include "ebpfnet/sock_lb.hpp"
#include "support.hpp"

namespace ebpfnet {
namespace {

using test::Child;
using test::cli_json;
using test::SandboxNode;

const Ipv4 kVip = *Ipv4::parse("10.96.0.10");
constexpr uint16_t kPort = 8080;

void ok(SandboxNode& sb, const std::vector<std::string>& args) {
  test::CmdResult r = sb.cli(args, 30);
  ASSERT_EQ(r.code, 0) << test::joined(args) << ": " << r.err;
}

// The programs attached at the cgroup root for connect(2) of IPv4 sockets.
std::vector<uint32_t> connect_hooks_at_root() {
  const auto root = sock_lb::cgroup_root();
  if (!root) return {};
  UniqueFd cg(::open(root->c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  std::vector<uint32_t> ids(256);
  __u32 count = ids.size();
  if (!cg.valid() || bpf_prog_query(cg.get(), BPF_CGROUP_INET4_CONNECT, 0, nullptr, ids.data(), &count) != 0)
    throw std::runtime_error("querying the cgroup root's connect hooks");
  ids.resize(count);
  return ids;
}

// The program of the node's pinned connect hook link; 0 when none is pinned.
uint32_t node_connect_hook(SandboxNode& sb) {
  UniqueFd link(bpf_obj_get((sb.node().pin_dir() / "sock_connect4_link").c_str()));
  if (!link.valid()) return 0;
  bpf_link_info info{};
  __u32 len = sizeof info;
  return bpf_obj_get_info_by_fd(link.get(), &info, &len) == 0 ? info.prog_id : 0;
}

bool at_root(uint32_t prog) {
  const auto ids = connect_hooks_at_root();
  return std::find(ids.begin(), ids.end(), prog) != ids.end();
}

// A TCP server in ns (on addr, or every address) that answers each
// connection with its name, then closes.
std::unique_ptr<Child> name_server(const std::string& ns, const std::string& name, const std::string& bind = "") {
  auto c = std::make_unique<Child>(std::vector<std::string>{
      "ip", "netns", "exec", ns, "socat", "-T5",
      "TCP-LISTEN:" + std::to_string(kPort) + ",reuseaddr,fork" + (bind.empty() ? "" : ",bind=" + bind),
      "SYSTEM:echo " + name});
  if (!test::listening(ns, "-t", kPort)) throw std::runtime_error("server in " + ns + " did not come up");
  return c;
}

std::string ask(const Netns& ns, Ipv4 dst) {
  UniqueFd fd = test::socket_in(ns, SOCK_STREAM);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = dst.be();
  a.sin_port = htons(kPort);
  timeval tv{3, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return "";
  std::string got;
  char buf[64];
  for (ssize_t n; (n = ::read(fd.get(), buf, sizeof buf)) > 0;) got.append(buf, n);
  while (!got.empty() && got.back() == '\n') got.pop_back();
  return got;
}

class SocketLb : public ::testing::Test {
 protected:
  void SetUp() override {
    EBPFNET_REQUIRE_ROOT();
    if (const std::string& why = sock_lb::unsupported_reason(); !why.empty())
      GTEST_SKIP() << "SKIPPED: connect-time balancing is unavailable on this machine: " << why;
    sb_.emplace("10.240.0.0/24", true, false, "", "sl");
    ok(*sb_, {"endpoint", "add", c(), w()});
  }
  std::string c() const { return sb_->name() + "-c"; }
  std::string w() const { return sb_->name() + "-w"; }
  std::string status() { return cli_json(*sb_, {"status"}).at("socket_lb"); }
  std::optional<SandboxNode> sb_;
};

TEST_F(SocketLb, HooksHangOnlyWhileAServiceWantsThem) {
  EXPECT_EQ(status(), "idle");
  EXPECT_EQ(node_connect_hook(*sb_), 0u);

  ok(*sb_, {"service", "add", "api", kVip.str() + ":8080/tcp", "--backend", w()});
  EXPECT_EQ(status(), "attached");
  const uint32_t prog = node_connect_hook(*sb_);
  ASSERT_NE(prog, 0u);
  EXPECT_TRUE(at_root(prog));

  ok(*sb_, {"service", "del", "api"});
  EXPECT_EQ(status(), "idle");
  EXPECT_FALSE(at_root(prog)) << "the last service with a virtual IP takes the hooks with it";

  ok(*sb_, {"service", "add", "api", kVip.str() + ":8080/tcp", "--backend", w()});
  const uint32_t again = node_connect_hook(*sb_);
  ASSERT_TRUE(at_root(again));
  ok(*sb_, {"attach", "--socket-lb", "off"});
  EXPECT_EQ(status(), "off");
  EXPECT_FALSE(at_root(again));
  ok(*sb_, {"attach", "--socket-lb", "on"});
  EXPECT_EQ(status(), "attached");
  const uint32_t last = node_connect_hook(*sb_);
  ASSERT_TRUE(at_root(last));

  sb_.reset();
  EXPECT_FALSE(at_root(last)) << "deleting the node detaches its hooks";
}

// The same address and port from a namespace that is no endpoint of the
// node reaches whatever that namespace has there, not a backend.
TEST_F(SocketLb, SocketsOutsideTheNodesEndpointsAreUntouched) {
  auto backend = name_server(w(), "backend");
  ok(*sb_, {"service", "add", "api", kVip.str() + ":8080/tcp", "--backend", w()});
  ASSERT_EQ(ask(Netns::open_named(c()), kVip), "backend") << "an endpoint's socket is balanced";

  const std::string other = test::unique("slx");
  netns::add(other);
  struct Cleanup {
    std::string ns;
    ~Cleanup() {
      try {
        netns::del(ns);
      } catch (const std::exception& e) {
        ADD_FAILURE() << "deleting namespace " << ns << ": " << e.what();
      }
    }
  } cleanup{other};
  ASSERT_EQ(test::run({"ip", "-n", other, "link", "set", "lo", "up"}).code, 0);
  ASSERT_EQ(test::run({"ip", "-n", other, "addr", "add", kVip.str() + "/32", "dev", "lo"}).code, 0);
  {
    auto own = name_server(other, "untouched", kVip.str());
    EXPECT_EQ(ask(Netns::open_named(other), kVip), "untouched");
  }
  EXPECT_EQ(ask(Netns::open_named(c()), kVip), "backend");
}

}  // namespace
}  // namespace ebpfnet
