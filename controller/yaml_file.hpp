// Reading a YAML file that users write by hand: every error names the file
// and line of what is wrong ("node.yaml:7: ..."), unknown and repeated keys
// are refused (yaml-cpp itself keeps the last of two equal keys). Shared by
// the policy files and node.yaml, so both report mistakes the same way.
#pragma once

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <initializer_list>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "ebpfnet/error.hpp"

namespace ebpfnet {

// A reason without its place; YamlFile::at adds the file and line.
struct Invalid {
  std::string reason;
};

inline std::string in_quotes(std::string_view s) { return "'" + std::string(s) + "'"; }

class YamlFile {
 public:
  explicit YamlFile(std::string source) : source_(std::move(source)) {}

  const std::string& source() const { return source_; }

  // The one document of text; an empty text is a null node. Syntax errors
  // and a second document are refused with their line.
  YAML::Node load(std::string_view text) const {
    std::vector<YAML::Node> docs;
    try {
      docs = YAML::LoadAll(std::string(text));
    } catch (const YAML::Exception& e) {
      fail(e.mark, e.msg);
    }
    if (docs.empty()) return YAML::Node();
    if (docs.size() > 1) fail(docs[1], "more than one YAML document");
    return docs[0];
  }

  // Errc::usage, "<source>:<line>: <reason>"; other codes for errors that
  // are about the node rather than the text (an endpoint that does not exist).
  [[noreturn]] void fail(const YAML::Mark& m, const std::string& reason, Errc code = Errc::usage) const {
    // An empty document has no position (line -1): the file's first line.
    throw Error(code, source_ + ":" + std::to_string(std::max(m.line, 0) + 1) + ": " + reason);
  }
  [[noreturn]] void fail(const YAML::Node& n, const std::string& reason, Errc code = Errc::usage) const {
    fail(n.Mark(), reason, code);
  }

  // Runs f, placing an Invalid it throws on the line of n.
  template <class F>
  auto at(const YAML::Node& n, F f) const {
    try {
      return f();
    } catch (const Invalid& e) {
      fail(n, e.reason);
    }
  }

  // Calls f(key, value, key node) for each entry of a mapping, refusing
  // unknown and repeated keys.
  template <class F>
  void for_each_entry(const YAML::Node& map, const std::string& where,
                      std::initializer_list<std::string_view> allowed, F f) const {
    std::set<std::string> seen;
    for (const auto& kv : map) {
      const YAML::Node& k = kv.first;
      if (!k.IsScalar()) fail(k, "keys " + where + " must be names");
      const std::string& key = k.Scalar();
      if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
        std::string list;
        for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
        fail(k, "unknown key " + in_quotes(key) + " " + where + " (allowed: " + list + ")");
      }
      if (!seen.insert(key).second) fail(k, "duplicate key " + in_quotes(key));
      f(key, kv.second, k);
    }
  }

  // A single value; a missing one is reported on its key's line.
  std::string scalar(const std::string& key, const YAML::Node& value, const YAML::Node& k) const {
    if (!value.IsScalar()) fail(value.IsNull() ? k : value, key + " must be a single value");
    return value.Scalar();
  }

 private:
  std::string source_;
};

}  // namespace ebpfnet
