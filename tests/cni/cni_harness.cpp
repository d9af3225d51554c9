#include "cni_harness.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <regex>
#include <system_error>

#include "ebpfnet/datapath.hpp"
#include "ebpfnet/fd.hpp"
#include "ebpfnet/netlink.hpp"

namespace ebpfnet::test {

json CniReply::result() const { return json::parse(out, nullptr, false); }

CniReply cni_exec(const std::vector<std::string>& env, const std::string& input, int timeout_s) {
  // The plugin sees only what a runtime would give it: these variables and a PATH.
  std::vector<std::string> vars = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin"};
  vars.insert(vars.end(), env.begin(), env.end());
  std::vector<char*> envp;
  for (auto& v : vars) envp.push_back(v.data());
  envp.push_back(nullptr);
  char* argv[] = {const_cast<char*>(EBPFNET_CNI_BIN), nullptr};

  // stdin is a memory file: a plugin that exits before reading it neither
  // blocks the test nor sends it SIGPIPE.
  UniqueFd in(memfd_create("cni-stdin", MFD_CLOEXEC));
  int out[2], err[2];
  if (!in.valid() || write(in.get(), input.data(), input.size()) != ssize_t(input.size()) ||
      lseek(in.get(), 0, SEEK_SET) != 0 || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC))
    throw std::system_error(errno, std::generic_category(), "preparing ebpfnet-cni's stdio");
  // posix_spawn rather than fork: the fuzz test starts thousands.
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in.get(), 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err[1], 2);
  pid_t pid = -1;
  int spawned = posix_spawn(&pid, argv[0], &fa, nullptr, argv, envp.data());
  posix_spawn_file_actions_destroy(&fa);
  close(out[1]);
  close(err[1]);
  if (spawned != 0) {
    close(out[0]);
    close(err[0]);
    throw std::system_error(spawned, std::generic_category(), "spawning " EBPFNET_CNI_BIN);
  }

  CniReply r;
  std::string* sink[] = {&r.out, &r.err};
  pollfd fds[] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  int open_fds = 2;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  while (open_fds > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    if (poll(fds, 2, static_cast<int>(left.count())) <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !fds[i].revents) continue;
      char buf[4096];
      ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        sink[i]->append(buf, n);
      } else {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  for (auto& f : fds)
    if (f.fd >= 0) close(f.fd);
  // Still running past its time: a hang is a failure too.
  if (open_fds > 0) kill(pid, SIGKILL);  // our own child, by PID
  int status = 0;
  waitpid(pid, &status, 0);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

std::string container_id() {
  std::string id = unique("c");
  return id + std::string(64 - id.size(), 'f');
}

Container::Container() : id_(container_id()), name_(unique("cc")) { netns::add(name_); }

Container::~Container() {
  try {
    remove();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "removing container namespace " << name_ << ": " << e.what();
  }
}

std::string Container::path() const { return netns::path_of(name_); }
Netns Container::netns() const { return Netns::open_named(name_); }

void Container::remove() {
  if (netns::exists(name_)) netns::del(name_);
}

ProcContainer::ProcContainer() : id_(container_id()) {
  int ready[2];
  if (pipe2(ready, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  pid_ = fork();
  if (pid_ == 0) {
    // Only system calls here: the parent may have threads.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    char ok = unshare(CLONE_NEWNET) == 0 ? 1 : 0;
    (void)!write(ready[1], &ok, 1);
    for (;;) pause();
  }
  close(ready[1]);
  pollfd p{ready[0], POLLIN, 0};
  char ok = 0;
  bool got = pid_ > 0 && poll(&p, 1, 5000) == 1 && read(ready[0], &ok, 1) == 1 && ok;
  close(ready[0]);
  if (!got) {
    stop();
    throw std::runtime_error("starting a process in its own network namespace failed");
  }
}

ProcContainer::~ProcContainer() { stop(); }

void ProcContainer::stop() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);  // our own child, by PID
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

CniNet::CniNet(const SandboxNode& sb, std::string version)
    : node_(sb.name()), version_(std::move(version)), name_(unique("net")),
      state_(sb.env().state_root) {}

json CniNet::conf() const {
  return {{"cniVersion", version_},
          {"name", name_},
          {"type", "ebpfnet-cni"},
          {"node", node_},
          {"stateDir", state_.string()},
          {"logFile", (state_ / (name_ + ".log")).string()},
          {"logLevel", "debug"}};
}

std::string CniNet::log() const { return read_file(state_ / (name_ + ".log")); }

CniReply CniNet::call(const std::string& verb, const Attachment& a, const json& conf,
                      const std::vector<std::string>& extra_env) const {
  std::vector<std::string> env = {"CNI_COMMAND=" + verb, "CNI_CONTAINERID=" + a.id,
                                  "CNI_NETNS=" + a.netns, "CNI_IFNAME=" + a.ifname,
                                  "CNI_PATH=/opt/cni/bin:/usr/lib/cni"};
  if (!a.args.empty()) env.push_back("CNI_ARGS=" + a.args);
  env.insert(env.end(), extra_env.begin(), extra_env.end());
  return cni_exec(env, conf.dump());
}

CniReply CniNet::check(const Attachment& a, const json& prev_result) const {
  json c = conf();
  c["prevResult"] = prev_result;
  return call("CHECK", a, c);
}

CniReply CniNet::node_call(const std::string& verb, const json& conf) const {
  return cni_exec({"CNI_COMMAND=" + verb, "CNI_PATH=/opt/cni/bin:/usr/lib/cni"}, conf.dump());
}

void expect_spec_result(const json& r, const std::string& version) {
  static const std::regex mac("^([0-9a-f]{2}:){5}[0-9a-f]{2}$");
  static const std::regex cidr(R"(^(\d{1,3}\.){3}\d{1,3}/\d{1,2}$)");
  static const std::regex ip(R"(^(\d{1,3}\.){3}\d{1,3}$)");
  ASSERT_TRUE(r.is_object()) << r;
  for (const auto& [k, v] : r.items())
    EXPECT_TRUE(k == "cniVersion" || k == "interfaces" || k == "ips" || k == "routes" || k == "dns")
        << "key not in the spec's result: " << k;
  EXPECT_EQ(r.value("cniVersion", ""), version);
  ASSERT_TRUE(r["interfaces"].is_array()) << r;
  for (const auto& i : r["interfaces"]) {
    EXPECT_TRUE(i["name"].is_string() && !i["name"].get<std::string>().empty()) << i;
    if (i.contains("mac")) {
      EXPECT_TRUE(std::regex_match(i["mac"].get<std::string>(), mac)) << i;
    }
    if (i.contains("sandbox")) {
      EXPECT_TRUE(i["sandbox"].is_string()) << i;
    }
  }
  ASSERT_TRUE(r["ips"].is_array()) << r;
  for (const auto& a : r["ips"]) {
    EXPECT_TRUE(std::regex_match(a.value("address", ""), cidr)) << a;
    if (a.contains("gateway")) {
      EXPECT_TRUE(std::regex_match(a.value("gateway", ""), ip)) << a;
    }
    ASSERT_TRUE(a["interface"].is_number_unsigned()) << a;
    EXPECT_LT(a["interface"].get<size_t>(), r["interfaces"].size()) << a;
    // 0.4.0 requires "version"; 1.0.0 dropped it.
    if (version == "0.4.0") {
      EXPECT_EQ(a.value("version", ""), "4") << a;
    } else {
      EXPECT_FALSE(a.contains("version")) << a;
    }
  }
  if (r.contains("routes")) {
    ASSERT_TRUE(r["routes"].is_array()) << r;
    for (const auto& rt : r["routes"]) {
      EXPECT_TRUE(std::regex_match(rt.value("dst", ""), cidr)) << rt;
      if (rt.contains("gw")) {
        EXPECT_TRUE(std::regex_match(rt.value("gw", ""), ip)) << rt;
      }
    }
  }
  if (r.contains("dns")) {
    EXPECT_TRUE(r["dns"].is_object()) << r;
  }
}

void expect_cni_error(const CniReply& r, int code, const std::string& msg_part) {
  EXPECT_NE(r.code, 0) << r.out;
  json j = r.result();
  ASSERT_TRUE(j.is_object()) << "stdout is not the spec's error JSON: " << r.out << r.err;
  EXPECT_TRUE(j["cniVersion"].is_string()) << j;
  EXPECT_EQ(j.value("code", -1), code) << j;
  EXPECT_NE(j.value("msg", "").find(msg_part), std::string::npos)
      << "message lacks '" << msg_part << "': " << j;
}

std::optional<EndpointRecord> endpoint_of(SandboxNode& sb, const Attachment& a) {
  return sb.node().find_container_endpoint({a.id, a.ifname});
}

std::vector<std::string> links_besides_lo(const Netns& ns) {
  std::vector<std::string> out;
  for (const auto& l : Netlink::in(ns).links())
    if (l.name != "lo") out.push_back(l.name);
  std::sort(out.begin(), out.end());
  return out;
}

void expect_node_empty(SandboxNode& sb) {
  EXPECT_TRUE(sb.node().endpoints().empty());
  std::vector<std::string> links = links_besides_lo(sb.node().netns());
  if (!sb.outside().empty()) std::erase(links, std::string("eth0"));  // the uplink
  EXPECT_TRUE(links.empty()) << "devices are left in the node";
  auto maps = Datapath::open_pinned_maps(sb.node().pin_dir());
  if (maps) {
    EXPECT_EQ(maps->endpoint_count(), 0u);
    EXPECT_TRUE(maps->ct_flows().empty()) << "conntrack still holds flows";
  }
  EXPECT_TRUE(entries(sb.node().pin_dir() / "links").empty());
}

}  // namespace ebpfnet::test
