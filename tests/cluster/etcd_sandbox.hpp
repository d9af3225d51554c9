// A real etcd for the cluster tests, in a sandbox: etcd runs in a namespace
// of its own and listens only on its sandbox address; clients run in a
// second sandbox namespace joined to it by a veth pair. Nothing is routed
// to or from the root namespace: test code talks to etcd only from a thread
// inside the client namespace (InNetns), the CLI through ip netns exec.
// etcd's data lives in a temporary directory; the process is stopped by its
// PID on every exit path (and dies with the thread that started it).
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "ebpfnet/netns.hpp"
#include "support.hpp"

namespace ebpfnet::test {

class EtcdSandbox {
 public:
  EtcdSandbox();
  ~EtcdSandbox();
  EtcdSandbox(const EtcdSandbox&) = delete;
  EtcdSandbox& operator=(const EtcdSandbox&) = delete;

  const std::string& url() const { return url_; }            // http://198.18.X.1:2379
  const std::string& client_ns() const { return client_ns_; }
  const std::string& server_ns() const { return server_ns_; }
  std::string address() const { return server_addr_; }
  std::string client_address() const { return client_addr_; }

  // SIGTERM by PID and wait; start again on the same data directory.
  void stop();
  void start();
  bool running() const { return pid_ > 0; }

 private:
  void spawn();
  void wait_ready();
  bool exited();  // reaps an etcd that ended

  TempStateDir dir_;
  std::string server_ns_, client_ns_, server_addr_, client_addr_, url_;
  pid_t pid_ = -1;
};

// Moves the calling thread into a named namespace for the object's life.
class InNetns {
 public:
  explicit InNetns(const std::string& name) : guard_(Netns::open_named(name)) {}

 private:
  NetnsGuard guard_;
};

// Runs fn on a new thread inside the named namespace and waits for it.
void run_in_netns(const std::string& name, const std::function<void()>& fn);

}  // namespace ebpfnet::test
