// Processes the benchmark starts: load tools and baseline commands, each in a
// named namespace and pinned to a CPU when asked, always bounded in time, and
// stopped by their own PID only.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

namespace ebpfnet::bench {

// Thrown once SIGINT or SIGTERM arrived: the run unwinds, and every
// destructor on the way removes what it built.
struct Interrupted : std::runtime_error {
  Interrupted() : std::runtime_error("interrupted") {}
};
void install_signal_handlers();
bool interrupted();
void throw_if_interrupted();

struct Spawn {
  std::vector<std::string> argv;
  std::string netns;  // a named namespace (/run/netns/NAME) to run in; "" = ours
  int cpu = -1;       // pinned to this CPU (sched_setaffinity before exec); -1 = anywhere
  std::string input;  // stdin
  int nice = 0;       // niceness set before exec (load tools: -20, so other work disturbs less)
};

struct Result {
  int code = -1;  // exit code, or 128 + signal
  std::string out, err;
  long peak_rss_kib = 0;  // its peak resident set (run() only)
};

// Runs to completion; killed (SIGKILL, by PID) after timeout_s.
Result run(const Spawn& s, double timeout_s = 30);
// As run, but a non-zero exit throws with the command and its stderr.
std::string run_ok(const Spawn& s, double timeout_s = 30);
std::string describe(const Spawn& s);

// A process running alongside the bench (a server, a receiver). Its stdout
// and stderr go to a private temp file. The destructor stops it by PID.
class Background {
 public:
  explicit Background(const Spawn& s);
  ~Background();
  Background(const Background&) = delete;
  Background& operator=(const Background&) = delete;

  pid_t pid() const { return pid_; }
  bool running();
  // Waits up to timeout_s for it to exit by itself (then SIGKILL), returns its output.
  Result wait(double timeout_s);
  // SIGTERM, then SIGKILL after a grace period; returns its output.
  Result stop();

 private:
  Result reap(int status);
  pid_t pid_ = -1;
  bool exited_ = false;
  int exited_status_ = 0;
  std::filesystem::path log_;
  std::string what_;
};

// True once a socket in pid's network namespace listens on TCP port (or, for
// udp, is bound to the UDP port): read from /proc/PID/net/{tcp,udp}.
bool bound(pid_t pid, bool udp, uint16_t port);
// Waits until the server process listens (false: it exited or limit passed).
bool wait_bound(Background& server, bool udp, uint16_t port, double limit_s = 5);

}  // namespace ebpfnet::bench
