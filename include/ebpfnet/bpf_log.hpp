// libbpf speaks through the project's logger (-v shows it), and what it says
// while a program loads is kept, so a verifier rejection can quote it.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace ebpfnet {

// Routes libbpf's output to spdlog; idempotent.
void route_libbpf_log();

// Collects libbpf's lines on this thread while it lives.
class LibbpfCapture {
 public:
  LibbpfCapture();
  ~LibbpfCapture();
  LibbpfCapture(const LibbpfCapture&) = delete;
  LibbpfCapture& operator=(const LibbpfCapture&) = delete;
  const std::vector<std::string>& lines() const { return lines_; }
  void add(std::string_view line) { lines_.emplace_back(line); }

 private:
  std::vector<std::string> lines_;
  LibbpfCapture* outer_;
};

// The error for a failed load of object `what` (err: positive errno), from
// what libbpf said: Errc::rejected naming the program and the verifier's
// last lines when the verifier refused, else the errno's own code.
[[noreturn]] void throw_load_error(std::string_view what, int err, const std::vector<std::string>& lines);

}  // namespace ebpfnet
