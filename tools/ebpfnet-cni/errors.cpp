// How failures reach the runtime: the spec's error JSON with a code, as
// text that is valid UTF-8 whatever the input held.
#include <algorithm>

#include "cni.hpp"

namespace ebpfnet::cni {

bool supported(std::string_view version) {
  return std::find(kVersions.begin(), kVersions.end(), version) != kVersions.end();
}

CniError from_ebpfnet(const Error& e, const std::string& details) {
  switch (e.code()) {
    // A system call, netlink, bpf or a state file refused: the spec's I/O failure.
    case Errc::failed: return CniError(kIoFailure, e.what(), details);
    // Bad input that got past the plugin's own checks comes from the config.
    case Errc::usage: return CniError(kInvalidConfig, e.what(), details);
    case Errc::not_found: return CniError(kNotFound, e.what(), details);
    case Errc::exists: return CniError(kInUse, e.what(), details);
    // A real failure, not a transient one: "try again later" (11) would make
    // a runtime retry what cannot succeed until an address is released.
    case Errc::exhausted: return CniError(kPoolExhausted, e.what(), details);
    case Errc::environment: return CniError(kEnvironment, e.what(), details);
    // The node's datapath does not fit this plugin's build: the node's own failure.
    case Errc::rejected: return CniError(kEnvironment, e.what(), details);
  }
  return CniError(kInternal, e.what(), details);
}

json error_json(std::string_view cni_version, const CniError& e) {
  json j = {{"cniVersion", cni_version}, {"code", e.code()}, {"msg", e.what()}};
  if (!e.details().empty()) j["details"] = e.details();
  return j;
}

std::string to_text(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string valid_utf8(std::string_view s) {
  // Through the JSON library, so the log and stdout agree on what is valid.
  return json::parse(to_text(std::string(s))).get<std::string>();
}

}  // namespace ebpfnet::cni
