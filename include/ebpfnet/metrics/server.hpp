// The HTTP side of `ebpfnet metrics --listen`: GET /metrics, nothing else.
#pragma once

#include <functional>
#include <string>

#include "ebpfnet/metrics/listen.hpp"
#include "ebpfnet/netns.hpp"

namespace ebpfnet::metrics {

// Serves GET /metrics with the body scrape() returns, fresh for every
// request (a scrape that throws answers 500 with the error), and 404 for
// every other path, until SIGINT or SIGTERM; then returns. The listening
// socket is made in ns, so the address must be one of that namespace (the
// node's). ready() is called once it listens. Throws an Error naming the
// address and the errno text when it cannot listen: Errc::exists when the
// address is taken, Errc::usage when it is not an address of the namespace.
void serve(const ListenAddress& at, const Netns& ns, const std::function<std::string()>& scrape,
           const std::function<void()>& ready);

}  // namespace ebpfnet::metrics
