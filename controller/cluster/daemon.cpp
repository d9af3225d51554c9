#include "ebpfnet/cluster/daemon.hpp"

#include <fcntl.h>
#include <linux/close_range.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string_view>
#include <thread>

#include "ebpfnet/error.hpp"

namespace ebpfnet::cluster {
namespace {

struct ProcStat {
  char state = 0;
  uint64_t start_time = 0;
};

// Fields after the command name, which may itself hold spaces and ')'.
std::optional<ProcStat> proc_stat(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return std::nullopt;
  const auto close = line.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream rest(line.substr(close + 1));
  ProcStat s;
  std::string skip;
  rest >> s.state;
  for (int field = 4; field < 22; ++field) rest >> skip;  // ppid .. priority fields up to starttime
  rest >> s.start_time;
  if (!rest) return std::nullopt;
  return s;
}

constexpr const char* kTagVar = "EBPFNET_DAEMON_OF";

// Reaps pid if it is our child and has ended (a daemon started by this
// invocation); for another's child this does nothing.
void reap(pid_t pid) { ::waitpid(pid, nullptr, WNOHANG); }

}  // namespace

DaemonId spawn_daemon(const DaemonSpec& spec) {
  if (spec.argv.empty() || spec.argv[0].empty() || spec.argv[0][0] != '/')
    throw Error(Errc::usage, "a daemon needs an absolute program path");
  // Everything the child needs is made before fork: after it, only
  // async-signal-safe calls.
  std::vector<char*> args;
  for (const auto& a : spec.argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const std::string tag = std::string(kTagVar) + "=" + spec.tag;
  std::vector<char*> env;
  for (char** e = environ; *e; ++e)
    if (std::string_view(*e).rfind(kTagVar, 0) != 0) env.push_back(*e);
  if (!spec.tag.empty()) env.push_back(const_cast<char*>(tag.c_str()));
  env.push_back(nullptr);
  UniqueFd null(::open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!null.valid()) throw_errno(errno, "opening /dev/null");
  int ready[2];
  if (::pipe2(ready, O_CLOEXEC) != 0) throw_errno(errno, "pipe for starting " + spec.argv[0]);
  UniqueFd ready_r(ready[0]), ready_w(ready[1]);

  const pid_t pid = ::fork();
  if (pid < 0) throw_errno(errno, "fork for " + spec.argv[0]);
  if (pid == 0) {
    int err = 0;
    if (::setsid() < 0) err = errno;
    if (!err && spec.netns_fd >= 0 && ::setns(spec.netns_fd, CLONE_NEWNET) != 0) err = errno;
    // No descriptor of ours (locks, namespaces, maps) lives on in the daemon.
    if (!err && ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) err = errno;
    const int out = spec.log_fd >= 0 ? spec.log_fd : null.get();
    if (!err && (::dup2(null.get(), 0) < 0 || ::dup2(out, 1) < 0 || ::dup2(out, 2) < 0)) err = errno;
    if (!err) {
      ::signal(SIGPIPE, SIG_DFL);
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);  // what the parent blocked is not the daemon's business
      ::execve(args[0], args.data(), env.data());  // O_CLOEXEC closes ready_w on success
      err = errno;
    }
    (void)!::write(ready_w.get(), &err, sizeof err);
    ::_exit(127);
  }
  ready_w.reset();
  int err = 0;
  ssize_t n;
  do n = ::read(ready_r.get(), &err, sizeof err);
  while (n < 0 && errno == EINTR);
  if (n == static_cast<ssize_t>(sizeof err)) {
    ::waitpid(pid, nullptr, 0);
    throw_errno(err, "starting " + spec.argv[0]);
  }
  auto st = proc_stat(pid);
  if (!st) {
    ::waitpid(pid, nullptr, 0);
    throw Error(Errc::failed, spec.argv[0] + " (pid " + std::to_string(pid) + ") ended at once");
  }
  return {pid, st->start_time};
}

std::vector<DaemonId> daemons_of(const std::string& tag) {
  std::vector<DaemonId> out;
  if (tag.empty()) return out;
  const std::string wanted = std::string(kTagVar) + "=" + tag;
  std::error_code ec;
  for (const auto& d : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = d.path().filename();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    const pid_t pid = static_cast<pid_t>(std::stol(name));
    const auto before = proc_stat(pid);
    std::ifstream in(d.path() / "environ", std::ios::binary);
    std::string var;
    bool tagged = false;
    while (!tagged && std::getline(in, var, '\0')) tagged = var == wanted;
    const auto after = proc_stat(pid);  // the same process all along, not one that took its PID meanwhile
    if (tagged && before && after && before->start_time == after->start_time && after->state != 'Z')
      out.push_back({pid, after->start_time});
  }
  return out;
}

bool daemon_alive(const DaemonId& d) {
  if (d.pid <= 0) return false;
  reap(d.pid);
  auto st = proc_stat(d.pid);
  return st && st->start_time == d.start_time && st->state != 'Z' && st->state != 'X';
}

bool stop_daemon(const DaemonId& d, std::chrono::milliseconds grace) {
  if (!daemon_alive(d)) return true;
  ::kill(d.pid, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + grace;
  while (std::chrono::steady_clock::now() < deadline) {
    if (!daemon_alive(d)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (!daemon_alive(d)) return true;
  ::kill(d.pid, SIGKILL);
  for (int i = 0; i < 100; ++i) {  // SIGKILL cannot be refused: at most a moment
    if (!daemon_alive(d)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

ProgramRun run_program(const std::vector<std::string>& argv) {
  if (argv.empty() || argv[0].empty() || argv[0][0] != '/') throw Error(Errc::usage, "a program needs an absolute path");
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) throw_errno(errno, "pipe for " + argv[0]);
  UniqueFd r(p[0]), w(p[1]);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, w.get(), 1);
  posix_spawn_file_actions_adddup2(&fa, w.get(), 2);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  const int err = ::posix_spawn(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (err) throw_errno(err, "running " + argv[0]);
  w.reset();
  ProgramRun out;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(r.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (out.output.size() < (1u << 20)) out.output.append(buf, static_cast<size_t>(n));
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  out.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

std::string find_program(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path ? path : "/usr/sbin:/usr/bin:/sbin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (dir.empty() || dir[0] != '/') continue;  // a relative PATH entry is no place to run a daemon from
    const std::string p = dir + "/" + name;
    if (::access(p.c_str(), X_OK) == 0) return p;
  }
  return "";
}

}  // namespace ebpfnet::cluster
