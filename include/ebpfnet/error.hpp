// Errors that carry their context and map to documented exit codes.
#pragma once

#include <stdexcept>
#include <string>

namespace ebpfnet {

// Exit codes of every ebpfnet command (README, "Exit codes").
enum class Errc : int {
  failed = 1,       // a system call or the kernel refused; the message says which
  usage = 2,        // bad command line or malformed input
  not_found = 3,    // unknown node, endpoint, namespace, process or interface
  exists = 4,       // already exists or already in use
  exhausted = 5,    // the address pool has no free address
  environment = 6,  // not root, no bpffs, or a kernel feature missing
  rejected = 7,     // the verifier rejected a program, or the pinned datapath is newer than this binary
};

class Error : public std::runtime_error {
 public:
  Error(Errc code, const std::string& what) : std::runtime_error(what), code_(code) {}
  Errc code() const { return code_; }

 private:
  Errc code_;
};

// "context: strerror(err)" with an exit code chosen from errno.
[[noreturn]] void throw_errno(int err, const std::string& context);

// The exit code that fits errno (EEXIST -> exists, ENOENT -> not_found, ...).
Errc errc_from_errno(int err);

}  // namespace ebpfnet
