// An owner for a bpftool-generated skeleton (struct T with T::open, T::load,
// T::destroy): opened on construction, destroyed with its owner, and a load
// whose failure says what the verifier said.
#pragma once

#include <cerrno>
#include <string>

#include "ebpfnet/bpf_log.hpp"
#include "ebpfnet/error.hpp"

namespace ebpfnet {

template <typename T>
class Skeleton {
 public:
  explicit Skeleton(std::string what) : what_(std::move(what)) {
    route_libbpf_log();
    skel_ = T::open();
    if (!skel_) throw_errno(errno, "opening the " + what_ + " BPF object");
  }
  ~Skeleton() { T::destroy(skel_); }
  Skeleton(const Skeleton&) = delete;
  Skeleton& operator=(const Skeleton&) = delete;

  void load() {
    LibbpfCapture log;
    if (int err = T::load(skel_); err != 0) throw_load_error(what_, -err, log.lines());
  }

  T* operator->() const { return skel_; }
  T* get() const { return skel_; }

 private:
  std::string what_;
  T* skel_ = nullptr;
};

}  // namespace ebpfnet
