#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <set>

#include "ebpfnet/endpoint_table.hpp"
#include "ebpfnet/error.hpp"
#include "ebpfnet/ipam.hpp"
#include "ebpfnet/names.hpp"
#include "ebpfnet/state.hpp"
#include "support.hpp"

namespace ebpfnet {
namespace {

NodeState sample() {
  NodeState s;
  s.name = "lab";
  s.cidr = *Ipv4Cidr::parse("10.240.0.0/24");
  s.last_allocated = *Ipv4::parse("10.240.0.3");
  s.attached = true;
  s.tc_mode = TcMode::tcx;
  s.ct_size = 1024;
  return s;
}

EndpointRecord sample_endpoint() {
  EndpointRecord e;
  e.name = "web";
  e.netns = "web";
  e.netns_path = "/run/netns/web";
  e.netns_owned = true;
  e.ip = *Ipv4::parse("10.240.0.3");
  e.mac = *parse_mac("02:00:00:00:00:03");
  e.host_ifname = "ep-web";
  e.host_ifindex = 7;
  e.host_mac = *parse_mac("02:00:00:00:01:03");
  e.tc_mode = TcMode::clsact;
  return e;
}

TEST(StateStore, RoundTrips) {
  test::TempStateDir dir;
  StateStore store(dir.path(), "lab");
  EXPECT_FALSE(store.exists());
  auto lock = store.lock(true);
  store.save(sample());
  EXPECT_TRUE(store.exists());
  NodeState s = store.load();
  EXPECT_EQ(s.name, "lab");
  EXPECT_EQ(s.cidr.str(), "10.240.0.0/24");
  EXPECT_EQ(s.tc_mode, TcMode::tcx);
  EXPECT_EQ(s.ct_size, 1024u);
  EXPECT_FALSE(s.legacy_endpoints);
}

TEST(StateStore, MissingNodeIsNotFound) {
  test::TempStateDir dir;
  try {
    StateStore(dir.path(), "nope").load();
    FAIL() << "load of a missing node succeeded";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::not_found);
  }
}

TEST(StateStore, LockingAMissingNodeMakesNothing) {
  test::TempStateDir dir;
  StateStore store(dir.path(), "ghost");
  try {
    store.lock();
    FAIL() << "locked a node that does not exist";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::not_found);
  }
  EXPECT_FALSE(std::filesystem::exists(store.dir()));
}

TEST(StateStore, CorruptStateIsAnErrorNotACrash) {
  test::TempStateDir dir;
  StateStore store(dir.path(), "lab");
  auto lock = store.lock(true);
  std::ofstream(store.dir() / "state.json") << "{\"version\": 1, \"name\": ";
  EXPECT_THROW(store.load(), Error);
}

// A writer that died before its rename leaves only the temp file: the last
// complete state is what a reader sees.
TEST(StateStore, InterruptedWriteLeavesTheOldState) {
  test::TempStateDir dir;
  StateStore store(dir.path(), "lab");
  auto lock = store.lock(true);
  store.save(sample());
  std::ofstream(store.dir() / "state.json.tmp") << "{ half written";
  EXPECT_EQ(store.load().ct_size, 1024u);
  NodeState next = sample();
  next.ct_size = 2048;
  store.save(next);
  EXPECT_EQ(store.load().ct_size, 2048u);
  EXPECT_FALSE(std::filesystem::exists(store.dir() / "state.json.tmp"));
}

TEST(StateStore, LockExcludesOtherProcesses) {
  test::TempStateDir dir;
  StateStore store(dir.path(), "lab");
  auto lock = store.lock(true);
  pid_t pid = fork();
  if (pid == 0) {
    int fd = open((store.dir() / "lock").c_str(), O_RDWR);
    _exit(flock(fd, LOCK_EX | LOCK_NB) == 0 ? 0 : 1);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_EQ(WEXITSTATUS(status), 1) << "a second process took the lock while it was held";
}

// Many processes allocating at once under the lock never hand out an
// address twice: each reads the node's endpoint table as the last one
// committed it.
TEST(StateStore, ConcurrentAllocationsAreDistinct) {
  test::TempStateDir dir;
  StateStore store(dir.path(), "lab");
  {
    auto lock = store.lock(true);
    store.save(sample());
  }
  auto table = [&](NodeDb::Mode mode, const NodeState& s) {
    return EndpointTable(std::make_shared<NodeDb>(store.checked_path("services.db"), mode), s.cidr);
  };
  constexpr int kProcs = 6, kEach = 15;
  std::vector<pid_t> kids;
  for (int p = 0; p < kProcs; ++p) {
    pid_t pid = fork();
    if (pid == 0) {
      for (int i = 0; i < kEach; ++i) {
        auto lock = store.lock();
        NodeState s = store.load();
        EndpointTable t = table(NodeDb::Mode::write, s);
        Ipam ipam(s.cidr, t.addresses(), s.last_allocated);
        EndpointRecord e = sample_endpoint();
        e.name = "p" + std::to_string(p) + "-" + std::to_string(i);
        e.host_ifname = host_ifname(e.name);
        e.host_ifindex = 100 + p * kEach + i;
        e.ip = ipam.allocate();
        s.last_allocated = ipam.last();
        t.put(e);
        store.save(s);
        t.commit();
      }
      _exit(0);
    }
    kids.push_back(pid);
  }
  for (pid_t k : kids) {
    int status = 0;
    waitpid(k, &status, 0);
    EXPECT_EQ(WEXITSTATUS(status), 0);
  }
  EndpointTable t = table(NodeDb::Mode::read, store.load());
  ASSERT_EQ(t.size(), size_t{kProcs * kEach});
  std::set<Ipv4> ips;
  t.for_each([&](const EndpointRecord& e) { ips.insert(e.ip); });
  EXPECT_EQ(ips.size(), size_t{kProcs * kEach});
}

}  // namespace
}  // namespace ebpfnet

namespace ebpfnet {
namespace {

TEST(CtTimeouts, SetsOneAndKeepsTheOthers) {
  CtTimeouts t;
  t.udp = 5;
  set_ct_timeout(t, "tcp=100");
  EXPECT_EQ(t.tcp, 100u);
  EXPECT_EQ(t.udp, 5u);
  EXPECT_EQ(t.syn, CtTimeouts{}.syn);
  for (const char* bad : {"bogus=1", "udp", "udp=", "udp=0", "udp=-1", "udp=1x", "=5"}) {
    try {
      set_ct_timeout(t, bad);
      ADD_FAILURE() << bad << " was accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Errc::usage) << bad;
    }
  }
  EXPECT_EQ(t.udp, 5u) << "a refused spec changed a timeout";
}

}  // namespace
}  // namespace ebpfnet
