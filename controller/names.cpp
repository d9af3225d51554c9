#include "ebpfnet/names.hpp"

#include <cstdio>

#include "ebpfnet/error.hpp"

namespace ebpfnet {
namespace {

bool name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-' || c == '.';
}

// FNV-1a: stable across runs and builds, which std::hash is not.
uint32_t fnv1a(std::string_view s, unsigned salt) {
  uint32_t h = 2166136261u ^ salt;
  for (unsigned char c : s) h = (h ^ c) * 16777619u;
  return h;
}

}  // namespace

std::string printable(std::string_view name) {
  std::string shown;
  for (char c : name) shown += (c >= 0x20 && c < 0x7f) ? c : '?';
  return shown;
}

void validate_name(std::string_view what, std::string_view name) {
  std::string shown = printable(name);
  if (name.empty()) throw Error(Errc::usage, std::string(what) + " name is empty");
  if (name.size() > kMaxNameLen)
    throw Error(Errc::usage, std::string(what) + " name '" + shown + "' is longer than " +
                                 std::to_string(kMaxNameLen) + " characters");
  for (char c : name)
    if (!name_char(c))
      throw Error(Errc::usage, std::string(what) + " name '" + shown +
                                   "' may only hold letters, digits, '_', '-' and '.'");
  if (name[0] == '.' || name[0] == '-')
    throw Error(Errc::usage,
                std::string(what) + " name '" + shown + "' must not start with '.' or '-'");
}

void validate_ifname(std::string_view name) {
  if (name.empty() || name.size() > kMaxIfnameLen || name == "." || name == "..")
    throw Error(Errc::usage, "interface name '" + printable(name) + "' must be 1-15 characters");
  for (char c : name)
    if (c == '/' || c == ':' || c <= ' ' || c == 0x7f)
      throw Error(Errc::usage, "interface name '" + printable(name) +
                                   "' must not hold '/', ':' or white space");
}

std::string host_ifname(std::string_view endpoint, unsigned attempt) {
  std::string plain = "ep-" + std::string(endpoint);
  if (plain.size() <= kMaxIfnameLen && attempt == 0) return plain;
  char tail[6];
  std::snprintf(tail, sizeof tail, "-%04x", fnv1a(endpoint, attempt) & 0xffff);
  return "ep-" + std::string(endpoint.substr(0, 7)) + tail;
}

}  // namespace ebpfnet
