#include "ebpfnet/cluster/in_netns.hpp"

#include <exception>
#include <thread>

namespace ebpfnet::cluster {

void run_in(const Netns& ns, const std::function<void()>& fn) {
  std::exception_ptr failure;
  std::thread t([&] {
    try {
      NetnsGuard in(ns);
      fn();
    } catch (...) {
      failure = std::current_exception();
    }
  });
  t.join();
  if (failure) std::rethrow_exception(failure);
}

}  // namespace ebpfnet::cluster
