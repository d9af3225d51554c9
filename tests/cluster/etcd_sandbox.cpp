#include "etcd_sandbox.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>


#include "ebpfnet/cluster/etcd_client.hpp"
#include "ebpfnet/cluster/in_netns.hpp"

namespace ebpfnet::test {
namespace {

void must(const std::vector<std::string>& argv) {
  CmdResult r = run(argv, "", 20);
  if (r.code != 0) throw std::runtime_error(joined(argv) + ": " + r.err);
}

}  // namespace

void run_in_netns(const std::string& name, const std::function<void()>& fn) {
  cluster::run_in(Netns::open_named(name), fn);
}

EtcdSandbox::EtcdSandbox() {
  const std::string id = unique("");
  server_ns_ = "ecs" + id;
  client_ns_ = "ecc" + id;
  // 198.18.0.0/15 is for benchmarks (RFC 2544); these addresses exist only in
  // the two namespaces below, so two runs never meet.
  const int octet = static_cast<int>(::getpid() % 250) + 1;
  server_addr_ = "198.18." + std::to_string(octet) + ".1";
  client_addr_ = "198.18." + std::to_string(octet) + ".2";
  url_ = "http://" + server_addr_ + ":2379";
  must({"ip", "netns", "add", server_ns_});
  try {
    must({"ip", "netns", "add", client_ns_});
    // The veth pair is made inside the server namespace with its peer created
    // straight in the client's: it never exists in the root namespace.
    must({"ip", "-n", server_ns_, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", client_ns_});
    for (const auto& [ns, addr] : {std::pair{server_ns_, server_addr_}, std::pair{client_ns_, client_addr_}}) {
      must({"ip", "-n", ns, "addr", "add", addr + "/30", "dev", "eth0"});
      must({"ip", "-n", ns, "link", "set", "eth0", "up"});
      must({"ip", "-n", ns, "link", "set", "lo", "up"});
    }
    spawn();
    wait_ready();
  } catch (...) {
    stop();
    run({"ip", "netns", "del", client_ns_});
    run({"ip", "netns", "del", server_ns_});
    throw;
  }
}

EtcdSandbox::~EtcdSandbox() {
  stop();
  run({"ip", "netns", "del", client_ns_});
  run({"ip", "netns", "del", server_ns_});
}

void EtcdSandbox::spawn() {
  const std::string peer = "http://" + server_addr_ + ":2380";
  const std::vector<std::string> argv = {
      "ip", "netns", "exec", server_ns_, "etcd",
      "--name", "s1",
      "--data-dir", (dir_.path() / "data").string(),
      "--listen-client-urls", url_,
      "--advertise-client-urls", url_,
      "--listen-peer-urls", peer,
      "--initial-advertise-peer-urls", peer,
      "--initial-cluster", "s1=" + peer,
      "--initial-cluster-token", server_ns_,
      "--logger", "zap",
      "--log-outputs", (dir_.path() / "etcd.log").string()};
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t parent = ::getpid();
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    // Dies with the test's thread that started it, whatever way that ends.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(1);
    ::setpgid(0, 0);
    const int null = ::open("/dev/null", O_RDWR);
    ::dup2(null, 0);
    ::dup2(null, 1);
    ::dup2(null, 2);
    ::execvp(args[0], args.data());  // ip netns exec execs etcd: same PID
    ::_exit(127);
  }
}

bool EtcdSandbox::exited() {
  if (pid_ <= 0) return true;
  if (::waitpid(pid_, nullptr, WNOHANG) == 0) return false;
  pid_ = -1;  // reaped: its PID must never be signalled again
  return true;
}

void EtcdSandbox::wait_ready() {
  bool ready = false;
  run_in_netns(client_ns_, [&] {
    cluster::EtcdClient client(url_, {std::chrono::milliseconds(200), std::chrono::milliseconds(1000)});
    ready = wait_until(
        [&] {
          try {
            client.get("/ebpfnet-test/ready");
            return true;
          } catch (const std::exception&) {
            return exited();  // it ended: stop waiting
          }
        },
        std::chrono::seconds(15));
  });
  if (!ready || exited())
    throw std::runtime_error("etcd did not come up at " + url_ + " (log: " + read_file(dir_.path() / "etcd.log").substr(0, 2000) + ")");
}

void EtcdSandbox::stop() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  int status = 0;
  if (!wait_until([&] { return ::waitpid(pid_, &status, WNOHANG) == pid_; }, std::chrono::seconds(5))) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &status, 0);
  }
  pid_ = -1;
}

void EtcdSandbox::start() {
  if (pid_ > 0) return;
  spawn();
  wait_ready();
}

}  // namespace ebpfnet::test
