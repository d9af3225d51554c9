// Shared by the test suites: unique names, running commands, sandbox nodes.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ebpfnet/error.hpp"
#include "ebpfnet/node.hpp"

namespace ebpfnet::test {

// Tests that need root or a kernel feature skip loudly (ctest shows them as
// skipped, never as passed).
#define EBPFNET_REQUIRE_ROOT()                                                          \
  do {                                                                                  \
    if (::geteuid() != 0) GTEST_SKIP() << "SKIPPED: needs root (netns, bpf, netlink)";  \
  } while (0)

// prefix + a per-process, per-call suffix: unique across runs sharing a
// machine, at most prefix + 7 characters.
std::string unique(std::string_view prefix);

struct CmdResult {
  int code = -1;  // exit code, or 128 + signal
  std::string out, err;
};

// Runs argv (no shell) with stdin from `input`, capturing stdout and stderr.
// Killed after timeout_s seconds.
CmdResult run(const std::vector<std::string>& argv, const std::string& input = "",
              int timeout_s = 60);

// Runs argv inside a named namespace (ip netns exec NAME argv...).
CmdResult run_in(const std::string& netns, const std::vector<std::string>& argv,
                 int timeout_s = 30);

// A process the test started (a server), leading its own process group so
// that socat's forked helpers go with it; killed by that id and reaped when
// the object goes. Its stdin, stdout and stderr are /dev/null.
class Child {
 public:
  explicit Child(const std::vector<std::string>& argv);
  ~Child();
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  pid_t pid() const { return pid_; }
  // Sends sig to the process (not its group) and waits for it to end, at
  // most limit; returns its exit code, 128 + the signal that ended it, or -1
  // when it did not end in time (it is then killed with its group).
  int stop(int sig, std::chrono::milliseconds limit);

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
};

// Polls done() every 20 ms until it holds (true) or limit passes (false).
bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds limit);

// Servers are children: wait until one listens (ss -l in the namespace;
// proto_flag "-t" or "-u") rather than sleeping a guess.
bool listening(const std::string& netns, const std::string& proto_flag, uint16_t port);

// A private state directory, removed when the object goes.
class TempStateDir {
 public:
  TempStateDir();
  ~TempStateDir();
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// A sandbox node with its own state directory, destroyed (with everything
// in it) when the object goes, also when a test fails midway. With
// uplink_sandbox it also has an outside namespace behind its uplink eth0.
class SandboxNode {
 public:
  // join: with uplink_sandbox, join that outside namespace (another
  // sandbox's) instead of making one; destroy this node before that one.
  // name_prefix: the node's name is it plus a unique suffix (unique()).
  // cidr6: a dual-stack node with that IPv6 pool.
  explicit SandboxNode(const std::string& cidr = "10.240.0.0/24", bool attach = true,
                       bool uplink_sandbox = false, const std::string& join = "",
                       std::string_view name_prefix = "tn", const std::string& cidr6 = "");
  ~SandboxNode();
  SandboxNode(const SandboxNode&) = delete;
  SandboxNode& operator=(const SandboxNode&) = delete;

  Node& node() { return node_; }
  const Env& env() const { return env_; }
  const std::string& name() const { return name_; }
  // The namespace playing the internet ("" without uplink_sandbox).
  const std::string& outside() const { return outside_; }
  // ebpfnet --state-dir <ours> --node <ours> args...
  CmdResult cli(const std::vector<std::string>& args, int timeout_s = 60);

 private:
  TempStateDir state_;
  Env env_;
  std::string name_;
  std::string outside_;
  Node node_;
};

// ebpfnet -o json args... on sb, parsed; throws with the error when it fails.
nlohmann::json cli_json(SandboxNode& sb, const std::vector<std::string>& args, int timeout_s = 60);

// The code of the ebpfnet::Error f throws; Errc{0} when it throws none.
Errc error_code_of(const std::function<void()>& f);

// Runs `monitor -o json --count 1 --duration 10 extra...` and pokes until
// it has printed its event (the first pokes may come before it listens).
CmdResult monitor_once(SandboxNode& sb, const std::vector<std::string>& extra, const std::function<void()>& poke);
// The one event such a run printed (a failure when it printed another count).
nlohmann::json one_event(const CmdResult& r);

// The whole file ("" when it cannot be read).
std::string read_file(const std::filesystem::path& p);
// The endpoint records of a node's database (<node dir>/services.db) as
// stored, in order; {} without one. Read without the node's lock and
// without recovery: what a killed command left, as it left it.
std::vector<std::string> stored_endpoint_rows(const std::filesystem::path& node_dir);
// The stored endpoint rows as the "endpoints" list of a state file of
// schema 7 or older, for tests that fake a node an older ebpfnet wrote.
nlohmann::json stored_endpoints_json(const std::filesystem::path& node_dir);
// state.json and every stored endpoint row: what the node remembers.
std::string stored_state(const std::filesystem::path& node_dir);
// The names in a directory, sorted ({} when it does not exist).
std::vector<std::string> entries(const std::filesystem::path& dir);

// An ebpfnet error as users see it: exactly one line, "ebpfnet: ...".
void expect_one_line_error(const CmdResult& r);
// argv quoted for a failure message.
std::string joined(const std::vector<std::string>& args);

// A parameterised test's name from a step name ("node-config#2" -> node_config_2).
std::string step_name(const testing::TestParamInfo<std::string>& info);

// The ebpfnet binary under test.
std::string ebpfnet_bin();

}  // namespace ebpfnet::test
