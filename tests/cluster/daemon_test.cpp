// Daemons of a sandbox cluster: started detached, found by their tag,
// stopped by PID, and never signalled when the recorded start time is not
// the running process's (a PID reused by another process).
#include <gtest/gtest.h>
#include <unistd.h>

#include "ebpfnet/cluster/daemon.hpp"
#include "support.hpp"

namespace ebpfnet::test {
namespace {

using namespace std::chrono_literals;
using cluster::DaemonId;

TEST(Daemon, StartedDetachedFoundByTagAndStoppedByPid) {
  const std::string tag = "/tmp/ebpfnet-daemon-test/" + unique("d");
  const std::string sleep = cluster::find_program("sleep");
  ASSERT_FALSE(sleep.empty());
  const DaemonId d = cluster::spawn_daemon({{sleep, "30"}, -1, -1, tag});
  EXPECT_TRUE(cluster::daemon_alive(d));
  EXPECT_NE(::getsid(d.pid), ::getsid(0)) << "a session of its own";
  const auto found = cluster::daemons_of(tag);
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].pid, d.pid);
  EXPECT_EQ(found[0].start_time, d.start_time);
  EXPECT_TRUE(cluster::daemons_of(tag + "x").empty()) << "only the exact tag";

  const DaemonId impostor{d.pid, d.start_time + 1};  // what a reused PID looks like
  EXPECT_FALSE(cluster::daemon_alive(impostor));
  EXPECT_TRUE(cluster::stop_daemon(impostor, 100ms));
  EXPECT_TRUE(cluster::daemon_alive(d)) << "a PID whose start time differs is never signalled";

  EXPECT_TRUE(cluster::stop_daemon(d, 2s));
  EXPECT_FALSE(cluster::daemon_alive(d));
  EXPECT_TRUE(cluster::daemons_of(tag).empty());
}

TEST(Daemon, AProgramThatCannotStartIsAnError) {
  EXPECT_THROW(cluster::spawn_daemon({{"/nonexistent/ebpfnet-daemon"}, -1, -1, ""}), Error);
  EXPECT_THROW(cluster::spawn_daemon({{"relative"}, -1, -1, ""}), Error);
}

}  // namespace
}  // namespace ebpfnet::test
