// What the load tools share: a fatal error with errno, the usage text, and
// strict number arguments. Each tool defines loadtool::kTool.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace loadtool {

struct Tool {
  const char* name;
  const char* usage;
};
extern const Tool kTool;

[[noreturn]] inline void die(const std::string& what) {
  std::fprintf(stderr, "%s: %s: %s\n", kTool.name, what.c_str(), std::strerror(errno));
  std::exit(1);
}

[[noreturn]] inline void usage() {
  std::fputs(kTool.usage, stderr);
  std::exit(2);
}

// The whole of s as a number in [lo, hi], or the usage and exit 2.
inline long parse_num(std::string_view s, long lo, long hi) {
  long v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size() || v < lo || v > hi) usage();
  return v;
}

// host:port as a destination; a host that is no IPv4 address is a usage
// error (exit 2).
inline sockaddr_in destination(const char* host, uint16_t port) {
  sockaddr_in dst{};
  dst.sin_family = AF_INET;
  dst.sin_port = htons(port);
  if (inet_pton(AF_INET, host, &dst.sin_addr) != 1) {
    std::fprintf(stderr, "%s: '%s' is not an IPv4 address\n", kTool.name, host);
    std::exit(2);
  }
  return dst;
}

// The p-quantile (0..1) of sorted samples, nearest rank.
inline double percentile(const std::vector<uint32_t>& sorted, double p) {
  if (sorted.empty()) return 0;
  size_t i = static_cast<size_t>(p * static_cast<double>(sorted.size() - 1) + 0.5);
  return sorted[std::min(i, sorted.size() - 1)];
}

}  // namespace loadtool
