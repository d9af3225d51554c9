// Talking to etcd from a sandbox namespace without moving the caller: the
// sandbox cluster commands and the cluster tests reach etcd only from inside
// the sandbox, never from the root namespace.
#pragma once

#include <functional>

#include "ebpfnet/netns.hpp"

namespace ebpfnet::cluster {

// Runs fn on a new thread inside ns and waits for it, rethrowing what fn
// throws: the calling thread never changes namespace, and every socket fn
// opens (and every thread it starts) belongs to ns.
void run_in(const Netns& ns, const std::function<void()>& fn);

}  // namespace ebpfnet::cluster
