// A sandbox etcd per test, and the test's main thread inside the client
// namespace for the test's life, so that every etcd client the test makes
// (and every thread it starts) talks from a sandbox, never from the root
// namespace.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "ebpfnet/cluster/agent.hpp"
#include "etcd_sandbox.hpp"
#include "support.hpp"

namespace ebpfnet::test {

class EtcdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    EBPFNET_REQUIRE_ROOT();
    etcd_ = std::make_unique<EtcdSandbox>();
    inside_ = std::make_unique<InNetns>(etcd_->client_ns());
    cluster_ = unique("c");
  }
  void TearDown() override {
    inside_.reset();  // back to where the test started, then the sandbox goes
    etcd_.reset();
  }

  cluster::AgentOptions options(const std::string& node, const std::string& underlay) const {
    cluster::AgentOptions o;
    o.etcd = etcd_->url();
    o.cluster = cluster_;
    o.node = node;
    o.underlay = *Ipv4::parse(underlay);
    o.cidr = Ipv4Cidr::parse("10.244.0.0/16");
    o.backoff = {std::chrono::milliseconds(100), std::chrono::milliseconds(500)};
    return o;
  }

  std::unique_ptr<EtcdSandbox> etcd_;
  std::unique_ptr<InNetns> inside_;
  std::string cluster_;
};

// Remembers when each peer was last added and removed.
class RecordingConsumer : public cluster::PeerConsumer {
 public:
  using Clock = std::chrono::steady_clock;
  void peer_added(const cluster::NodeRecord& p) override { mark(added_, p.name); }
  void peer_changed(const cluster::NodeRecord&, const cluster::NodeRecord& a) override { mark(changed_, a.name); }
  void peer_removed(const cluster::NodeRecord& p) override { mark(removed_, p.name); }
  std::optional<Clock::time_point> added(const std::string& n) const { return get(added_, n); }
  std::optional<Clock::time_point> removed(const std::string& n) const { return get(removed_, n); }

 private:
  void mark(std::map<std::string, Clock::time_point>& m, const std::string& n) {
    std::lock_guard lock(mu_);
    m[n] = Clock::now();
  }
  std::optional<Clock::time_point> get(const std::map<std::string, Clock::time_point>& m, const std::string& n) const {
    std::lock_guard lock(mu_);
    auto it = m.find(n);
    if (it == m.end()) return std::nullopt;
    return it->second;
  }
  mutable std::mutex mu_;
  std::map<std::string, Clock::time_point> added_, changed_, removed_;
};

// An agent on its own thread (which inherits the test thread's namespace).
class RunningAgent {
 public:
  explicit RunningAgent(cluster::AgentOptions o)
      : agent_(std::move(o), consumer_), thread_([this](std::stop_token s) {
          try {
            agent_.run(s);
          } catch (const std::exception& e) {
            std::lock_guard lock(mu_);
            error_ = e.what();
          }
          ended_ = true;
        }) {}
  ~RunningAgent() { stop(); }
  void stop() {
    thread_.request_stop();
    if (thread_.joinable()) thread_.join();
  }
  bool joined(std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    return wait_until([&] { return agent_.joined() || ended_; }, limit) && agent_.joined();
  }
  bool has_peer(const std::string& n) const { return agent_.peers().count(n) > 0; }
  cluster::Agent& agent() { return agent_; }
  RecordingConsumer& consumer() { return consumer_; }
  bool ended() const { return ended_; }
  std::string error() const {
    std::lock_guard lock(mu_);
    return error_;
  }

 private:
  RecordingConsumer consumer_;
  cluster::Agent agent_;
  mutable std::mutex mu_;
  std::string error_;
  std::atomic<bool> ended_{false};
  std::jthread thread_;
};

}  // namespace ebpfnet::test
