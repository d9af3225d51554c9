// What the load tools share: a fatal error with errno, the usage text, and
// strict number arguments. Each tool defines loadtool::kTool.
#pragma once

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

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

}  // namespace loadtool
