#include "ebpfnet/bpf_log.hpp"

#include <bpf/libbpf.h>
#include <spdlog/spdlog.h>

#include <cstdarg>
#include <cstdio>
#include <mutex>

#include "ebpfnet/error.hpp"

namespace ebpfnet {
namespace {

thread_local LibbpfCapture* capture = nullptr;
thread_local std::string pending;  // a line libbpf has not finished yet

int print(libbpf_print_level level, const char* fmt, va_list args) {
  char buf[4096];
  int n = std::vsnprintf(buf, sizeof buf, fmt, args);
  if (n < 0) return n;
  pending += buf;
  size_t start = 0, nl;
  while ((nl = pending.find('\n', start)) != std::string::npos) {
    std::string_view line(pending.data() + start, nl - start);
    // libbpf prefixes its own messages; the verifier's lines it quotes are not.
    const char* prefix = line.starts_with("libbpf: ") ? "" : "libbpf: ";
    if (level == LIBBPF_DEBUG)
      spdlog::debug("{}{}", prefix, line);
    else
      spdlog::info("{}{}", prefix, line);
    if (capture) capture->add(line);
    start = nl + 1;
  }
  pending.erase(0, start);
  return n;
}

// The program a libbpf message names: "prog 'NAME': ...".
std::string program_named(const std::vector<std::string>& lines) {
  for (const auto& l : lines) {
    auto p = l.find("prog '");
    if (p == std::string::npos) continue;
    auto end = l.find('\'', p + 6);
    if (end != std::string::npos) return l.substr(p + 6, end - p - 6);
  }
  return "";
}

}  // namespace

void route_libbpf_log() {
  static std::once_flag once;
  std::call_once(once, [] { libbpf_set_print(print); });
}

LibbpfCapture::LibbpfCapture() : outer_(capture) {
  route_libbpf_log();
  capture = this;
}

LibbpfCapture::~LibbpfCapture() { capture = outer_; }

void throw_load_error(std::string_view what, int err, const std::vector<std::string>& lines) {
  size_t begin = lines.size(), end = lines.size();
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].find("-- BEGIN PROG LOAD LOG --") != std::string::npos) begin = i + 1;
    if (lines[i].find("-- END PROG LOAD LOG --") != std::string::npos) end = i;
  }
  if (begin >= end) throw_errno(err, "loading the " + std::string(what) + " BPF object");
  // The verifier's verdict is at the end of its log; the lines before it say where.
  std::string tail;
  for (size_t i = end > begin + 4 ? end - 4 : begin; i < end; ++i)
    if (!lines[i].empty()) tail += "\n  " + lines[i];
  std::string prog = program_named(lines);
  throw Error(Errc::rejected, "the kernel's verifier rejected program " + (prog.empty() ? std::string(what) : prog) +
                                  " of the " + std::string(what) + " BPF object (-v shows the whole log):" + tail);
}

}  // namespace ebpfnet
