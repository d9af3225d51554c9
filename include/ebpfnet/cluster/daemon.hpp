// Long-running helpers a sandbox cluster starts (etcd, the agents) and
// stops later, from another ebpfnet invocation, by PID. A PID alone can be
// reused by an unrelated process once the daemon is gone, so each is
// recorded with the start time the kernel gives it: a PID whose start time
// differs is not ours and is never signalled.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "ebpfnet/fd.hpp"

namespace ebpfnet::cluster {

struct DaemonId {
  pid_t pid = 0;
  uint64_t start_time = 0;  // /proc/PID/stat field 22, clock ticks after boot
};

struct DaemonSpec {
  std::vector<std::string> argv;  // argv[0]: an absolute path
  int netns_fd = -1;              // entered before exec; -1: this namespace
  int log_fd = -1;                // its stdout and stderr; stdin is /dev/null
  // Put in its environment as EBPFNET_DAEMON_OF=tag, so that a daemon whose
  // PID was never recorded (its starter killed right after starting it) is
  // still found by daemons_of(tag).
  std::string tag;
};

// Starts argv in a session of its own (no terminal signal reaches it), not
// tied to this process's life. Throws ebpfnet::Error when it cannot start.
DaemonId spawn_daemon(const DaemonSpec& spec);

// The running processes started with tag (from their environment).
std::vector<DaemonId> daemons_of(const std::string& tag);

// The process is running and is the one recorded (a zombie is not running).
bool daemon_alive(const DaemonId& d);

// SIGTERM, then SIGKILL after grace; true when it is gone (or was already).
bool stop_daemon(const DaemonId& d, std::chrono::milliseconds grace);

struct ProgramRun {
  int status = -1;     // its exit status; -1: ended by a signal
  std::string output;  // stdout and stderr together (at most 1 MiB kept)
};
// Runs argv (argv[0] an absolute path) in this namespace to its end, stdin
// /dev/null: for short tools (birdc, ip) that answer at once.
ProgramRun run_program(const std::vector<std::string>& argv);

// The absolute path of a program on PATH; "" when there is none.
std::string find_program(const std::string& name);

}  // namespace ebpfnet::cluster
