#include <sqlite3.h>
#include "support.hpp"


#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <algorithm>
#include <cctype>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <future>
#include <sstream>
#include <system_error>
#include <thread>

#include "ebpfnet/error.hpp"

extern char** environ;

namespace ebpfnet::test {

std::string unique(std::string_view prefix) {
  static std::atomic<unsigned> counter{0};
  char buf[16];
  std::snprintf(buf, sizeof buf, "%05x%02x", static_cast<unsigned>(::getpid()) & 0xfffff,
                counter++ & 0xff);
  return std::string(prefix) + buf;
}

std::string ebpfnet_bin() { return EBPFNET_BIN; }

void expect_one_line_error(const CmdResult& r) {
  EXPECT_EQ(r.err.rfind("ebpfnet: ", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_TRUE(!r.err.empty() && r.err.back() == '\n') << r.err;
}

std::string joined(const std::vector<std::string>& args) {
  std::string out;
  for (const auto& a : args) out += (out.empty() ? "" : " ") + ("'" + a + "'");
  return out;
}

std::string read_file(const std::filesystem::path& p) {
  std::ifstream f(p);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

std::vector<std::string> stored_endpoint_rows(const std::filesystem::path& node_dir) {
  std::vector<std::string> out;
  const auto file = node_dir / "services.db";
  if (!std::filesystem::exists(file)) return out;
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(file.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    ADD_FAILURE() << "opening " << file << ": " << (db ? sqlite3_errmsg(db) : "out of memory");
    sqlite3_close(db);
    return out;
  }
  sqlite3_busy_timeout(db, 5000);
  sqlite3_stmt* q = nullptr;
  // A database of layout 1 (a node of schema 7) has no endpoint table yet.
  if (sqlite3_prepare_v2(db, "SELECT record FROM endpoints ORDER BY rowid", -1, &q, nullptr) == SQLITE_OK)
    while (sqlite3_step(q) == SQLITE_ROW) out.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(q, 0)));
  sqlite3_finalize(q);
  sqlite3_close(db);
  return out;
}

nlohmann::json stored_endpoints_json(const std::filesystem::path& node_dir) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& row : stored_endpoint_rows(node_dir)) out.push_back(nlohmann::json::parse(row));
  return out;
}

std::string stored_state(const std::filesystem::path& node_dir) {
  std::string out = read_file(node_dir / "state.json");
  for (const auto& row : stored_endpoint_rows(node_dir)) out += "\n" + row;
  return out;
}

std::vector<std::string> entries(const std::filesystem::path& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) out.push_back(e.path().filename());
  std::sort(out.begin(), out.end());
  return out;
}

CmdResult run(const std::vector<std::string>& argv, const std::string& input, int timeout_s) {
  int in[2], out[2], err[2];
  if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC)) return {};
  pid_t pid = fork();
  if (pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    dup2(err[1], 2);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    std::fprintf(stderr, "exec %s: %s\n", args[0], std::strerror(errno));
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  close(err[1]);
  if (!input.empty()) (void)!write(in[1], input.data(), input.size());
  close(in[1]);

  CmdResult r;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  int open_fds = 2;
  bool killed = false;
  while (open_fds > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 && !killed) {
      kill(pid, SIGKILL);  // our own child, by PID
      killed = true;
    }
    if (poll(fds, 2, killed ? 1000 : static_cast<int>(left.count())) <= 0) {
      if (killed) break;
      continue;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP))) continue;
      char buf[4096];
      ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n <= 0) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      } else {
        (i == 0 ? r.out : r.err).append(buf, n);
      }
    }
  }
  for (auto& f : fds)
    if (f.fd >= 0) close(f.fd);
  int status = 0;
  waitpid(pid, &status, 0);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

CmdResult run_in(const std::string& netns, const std::vector<std::string>& argv, int timeout_s) {
  std::vector<std::string> full = {"ip", "netns", "exec", netns};
  full.insert(full.end(), argv.begin(), argv.end());
  return run(full, "", timeout_s);
}

Child::Child(const std::vector<std::string>& argv) {
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  for (int fd : {0, 1, 2}) posix_spawn_file_actions_addopen(&fa, fd, "/dev/null", O_RDWR, 0);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  int err = posix_spawnp(&pid_, args[0], &fa, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (err) throw std::system_error(err, std::generic_category(), "spawning " + argv[0]);
}

Child::~Child() {
  if (reaped_) return;
  ::kill(-pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
}

int Child::stop(int sig, std::chrono::milliseconds limit) {
  ::kill(pid_, sig);
  int status = 0;
  const bool ended = wait_until([&] { return ::waitpid(pid_, &status, WNOHANG) == pid_; }, limit);
  if (!ended) return -1;  // the destructor kills and reaps it
  reaped_ = true;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

bool listening(const std::string& netns, const std::string& proto_flag, uint16_t port) {
  return wait_until(
      [&] {
        CmdResult r =
            run_in(netns, {"ss", "-Hln", proto_flag, "sport = :" + std::to_string(port)}, 5);
        return r.code == 0 && !r.out.empty();
      },
      std::chrono::seconds(5));
}

TempStateDir::TempStateDir() {
  char tmpl[] = "/tmp/ebpfnet-test-XXXXXX";
  if (!mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempStateDir::~TempStateDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

namespace {
Env env_at(const std::filesystem::path& state) {
  Env e;
  e.state_root = state;
  return e;
}
}  // namespace

SandboxNode::SandboxNode(const std::string& cidr, bool attach, bool uplink_sandbox,
                         const std::string& join, std::string_view name_prefix, const std::string& cidr6)
    : env_(env_at(state_.path())),
      name_(unique(name_prefix)),
      outside_(!uplink_sandbox ? "" : join.empty() ? name_ + "-out" : join),
      node_(env_, name_) {
  Node::create(env_, name_, *Ipv4Cidr::parse(cidr), {}, uplink_sandbox, join,
               cidr6.empty() ? std::nullopt : Ipv6Cidr::parse(cidr6));
  // The destructor does not run for a constructor that throws.
  try {
    if (attach) node_.attach();
  } catch (...) {
    Node::destroy(env_, name_);
    throw;
  }
}

SandboxNode::~SandboxNode() {
  try {
    Node::destroy(env_, name_);
  } catch (const Error& e) {
    // A test may have deleted the node itself (`ebpfnet node delete`).
    if (e.code() != Errc::not_found) ADD_FAILURE() << "destroying sandbox node " << name_ << ": " << e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "destroying sandbox node " << name_ << ": " << e.what();
  }
}

CmdResult SandboxNode::cli(const std::vector<std::string>& args, int timeout_s) {
  std::vector<std::string> full = {ebpfnet_bin(), "--state-dir", env_.state_root.string(),
                                   "--node", name_};
  full.insert(full.end(), args.begin(), args.end());
  return run(full, "", timeout_s);
}

nlohmann::json cli_json(SandboxNode& sb, const std::vector<std::string>& args, int timeout_s) {
  std::vector<std::string> full = {"-o", "json"};
  full.insert(full.end(), args.begin(), args.end());
  CmdResult r = sb.cli(full, timeout_s);
  if (r.code != 0) throw std::runtime_error("ebpfnet " + joined(args) + ": " + r.err);
  return nlohmann::json::parse(r.out);
}

Errc error_code_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.code();
  }
  return Errc{0};
}

CmdResult monitor_once(SandboxNode& sb, const std::vector<std::string>& extra, const std::function<void()>& poke) {
  std::vector<std::string> args = {"-o", "json", "monitor", "--count", "1", "--duration", "10"};
  args.insert(args.end(), extra.begin(), extra.end());
  // run() kills it by PID if it overstays.
  auto f = std::async(std::launch::async, [&] { return sb.cli(args, 15); });
  for (int i = 0; i < 200 && f.wait_for(std::chrono::seconds(0)) != std::future_status::ready; ++i) {
    poke();
    f.wait_for(std::chrono::milliseconds(50));
  }
  return f.get();
}

nlohmann::json one_event(const CmdResult& r) {
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  try {
    return nlohmann::json::parse(r.out.substr(0, r.out.find('\n')));
  } catch (const std::exception& e) {
    ADD_FAILURE() << "monitor printed '" << r.out << "': " << e.what();
    return nlohmann::json::object();
  }
}

std::string step_name(const testing::TestParamInfo<std::string>& info) {
  std::string n = info.param;
  for (char& c : n)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return n;
}

}  // namespace ebpfnet::test
