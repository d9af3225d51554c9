#include "bench/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

namespace ebpfnet::bench {
namespace {

using Clock = std::chrono::steady_clock;

volatile sig_atomic_t g_signal = 0;

void on_signal(int sig) { g_signal = sig; }

// After fork, before exec: only async-signal-safe calls. The child dies with
// the bench (PDEATHSIG), so a killed bench leaves no load running.
[[noreturn]] void exec_child(const Spawn& s, const std::vector<char*>& argv,
                             const std::string& ns_path, int in_fd, int out_fd, int err_fd) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  if (in_fd >= 0) dup2(in_fd, 0);
  if (out_fd >= 0) dup2(out_fd, 1);
  if (err_fd >= 0) dup2(err_fd, 2);
  if (!ns_path.empty()) {
    int fd = open(ns_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) {
      dprintf(2, "bench: entering netns %s: %s\n", ns_path.c_str(), strerror(errno));
      _exit(126);
    }
  }
  if (s.cpu >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(s.cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) {
      dprintf(2, "bench: pinning to CPU %d: %s\n", s.cpu, strerror(errno));
      _exit(126);
    }
  }
  if (s.nice != 0 && setpriority(PRIO_PROCESS, 0, s.nice) != 0) {
    dprintf(2, "bench: nice %d: %s\n", s.nice, strerror(errno));
    _exit(126);
  }
  execvp(argv[0], argv.data());
  dprintf(2, "bench: exec %s: %s\n", argv[0], strerror(errno));
  _exit(127);
}

std::vector<char*> c_argv(const Spawn& s) {
  std::vector<char*> v;
  for (const auto& a : s.argv) v.push_back(const_cast<char*>(a.c_str()));
  v.push_back(nullptr);
  return v;
}

std::string ns_path(const Spawn& s) { return s.netns.empty() ? "" : "/run/netns/" + s.netns; }

int exit_code(int status) {
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Waits for pid until deadline (polling, so a signal to the bench is seen);
// returns false if it is still running then.
bool wait_pid(pid_t pid, Clock::time_point deadline, int& status, bool watch_signal) {
  for (;;) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return true;
    if (r < 0 && errno != EINTR) {
      status = 0;
      return true;
    }
    if (Clock::now() >= deadline) return false;
    if (watch_signal && g_signal) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

}  // namespace

void install_signal_handlers() {
  struct sigaction sa{};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

bool interrupted() { return g_signal != 0; }

void throw_if_interrupted() {
  if (g_signal) throw Interrupted();
}

std::string describe(const Spawn& s) {
  std::string d;
  if (!s.netns.empty()) d = "[netns " + s.netns + "] ";
  for (size_t i = 0; i < s.argv.size(); ++i) d += (i ? " " : "") + s.argv[i];
  return d;
}

Result run(const Spawn& s, double timeout_s) {
  throw_if_interrupted();
  int in[2], out[2], err[2];
  if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC))
    throw std::runtime_error("pipe: " + std::string(strerror(errno)));
  auto argv = c_argv(s);
  auto path = ns_path(s);
  pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork: " + std::string(strerror(errno)));
  if (pid == 0) exec_child(s, argv, path, in[0], out[1], err[1]);
  close(in[0]);
  close(out[1]);
  close(err[1]);
  // Small inputs (iptables-restore files of 10,000 rules are ~1 MB): written
  // from a thread so a child that answers while reading cannot deadlock us.
  std::thread writer([fd = in[1], &s] {
    size_t off = 0;
    while (off < s.input.size()) {
      ssize_t n = write(fd, s.input.data() + off, s.input.size() - off);
      if (n <= 0) break;
      off += static_cast<size_t>(n);
    }
    close(fd);
  });

  Result r;
  auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                     std::chrono::duration<double>(timeout_s));
  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  int open_fds = 2;
  bool killed = false;
  while (open_fds > 0) {
    if (!killed && (Clock::now() >= deadline || g_signal)) {
      kill(pid, SIGKILL);  // our own child, by PID
      killed = true;
    }
    int n = poll(fds, 2, 100);
    if (n <= 0) {
      if (killed && n == 0) break;
      continue;
    }
    for (auto& f : fds) {
      if (f.fd < 0 || !(f.revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buf[8192];
      ssize_t k = read(f.fd, buf, sizeof buf);
      if (k <= 0) {
        close(f.fd);
        f.fd = -1;
        --open_fds;
      } else {
        (&f == &fds[0] ? r.out : r.err).append(buf, static_cast<size_t>(k));
      }
    }
  }
  for (auto& f : fds)
    if (f.fd >= 0) close(f.fd);
  int status = 0;
  rusage ru{};
  wait4(pid, &status, 0, &ru);
  writer.join();
  r.code = exit_code(status);
  r.peak_rss_kib = ru.ru_maxrss;
  throw_if_interrupted();
  if (killed) r.err += "\nbench: killed after " + std::to_string(timeout_s) + " s";
  return r;
}

std::string run_ok(const Spawn& s, double timeout_s) {
  Result r = run(s, timeout_s);
  if (r.code != 0) {
    std::string err = r.err;
    while (!err.empty() && (err.back() == '\n' || err.back() == ' ')) err.pop_back();
    throw std::runtime_error(describe(s) + ": exit " + std::to_string(r.code) +
                             (err.empty() ? "" : ": " + err));
  }
  return r.out;
}

Background::Background(const Spawn& s) : what_(describe(s)) {
  throw_if_interrupted();
  char tmpl[] = "/tmp/ebpfnet-bench-log-XXXXXX";
  int fd = mkstemp(tmpl);
  if (fd < 0) throw std::runtime_error("mkstemp: " + std::string(strerror(errno)));
  log_ = tmpl;
  int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
  auto argv = c_argv(s);
  auto path = ns_path(s);
  pid_ = fork();
  if (pid_ == 0) exec_child(s, argv, path, devnull, fd, fd);
  close(fd);
  close(devnull);
  if (pid_ < 0) {
    std::filesystem::remove(log_);
    throw std::runtime_error("fork: " + std::string(strerror(errno)));
  }
}

Background::~Background() {
  if (pid_ > 0) stop();
  std::error_code ec;
  std::filesystem::remove(log_, ec);
}

bool Background::running() {
  if (pid_ <= 0) return false;
  int status = 0;
  pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == 0) return true;
  // Exited: keep the status for wait() by not reaping twice.
  exited_status_ = status;
  exited_ = true;
  return false;
}

Result Background::reap(int status) {
  pid_ = -1;
  Result r;
  r.code = exit_code(status);
  std::ifstream f(log_);
  std::stringstream ss;
  ss << f.rdbuf();
  r.out = ss.str();
  return r;
}

Result Background::wait(double timeout_s) {
  if (pid_ <= 0) return {};
  if (exited_) return reap(exited_status_);
  int status = 0;
  auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                     std::chrono::duration<double>(timeout_s));
  if (!wait_pid(pid_, deadline, status, true)) {
    kill(pid_, SIGKILL);
    waitpid(pid_, &status, 0);
    Result r = reap(status);
    throw_if_interrupted();
    r.err = what_ + ": killed after " + std::to_string(timeout_s) + " s";
    return r;
  }
  return reap(status);
}

Result Background::stop() {
  if (pid_ <= 0) return {};
  if (exited_) return reap(exited_status_);
  int status = 0;
  kill(pid_, SIGTERM);
  if (!wait_pid(pid_, Clock::now() + std::chrono::seconds(2), status, false)) {
    kill(pid_, SIGKILL);
    waitpid(pid_, &status, 0);
  }
  return reap(status);
}

bool bound(pid_t pid, bool udp, uint16_t port) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/net/" + (udp ? "udp" : "tcp"));
  std::string line;
  std::getline(f, line);  // header
  char want[8];
  std::snprintf(want, sizeof want, ":%04X", port);
  while (std::getline(f, line)) {
    std::istringstream s(line);
    std::string slot, local, remote, state;
    s >> slot >> local >> remote >> state;
    if (local.size() >= 5 && local.compare(local.size() - 5, 5, want) == 0 &&
        (udp || state == "0A"))
      return true;
  }
  return false;
}

bool wait_bound(Background& server, bool udp, uint16_t port, double limit_s) {
  auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                     std::chrono::duration<double>(limit_s));
  while (Clock::now() < deadline) {
    throw_if_interrupted();
    if (!server.running()) return false;
    if (bound(server.pid(), udp, port)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

}  // namespace ebpfnet::bench
