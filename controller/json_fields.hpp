// Reading a JSON object of a state file field by field: each field must be
// present and of its type, numbers must fit the type they are read into
// (never truncated), and every failure names its field ("endpoints[2].ip").
// Shared by the node's state file and its services table.
#pragma once

#include <array>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "ebpfnet/error.hpp"
#include "ebpfnet/ipv4.hpp"
#include "ebpfnet/state.hpp"

namespace ebpfnet {

class Fields {
 public:
  Fields(const nlohmann::json& j, std::string path) : j_(j), path_(std::move(path)) {
    if (!j_.is_object())
      throw Error(Errc::failed, (path_.empty() ? "the file" : path_) + ": is not a JSON object");
  }

  std::string name(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }
  Error bad(const std::string& key, const std::string& problem) const {
    return Error(Errc::failed, name(key) + ": " + problem);
  }

  const nlohmann::json& at(const std::string& key) const {
    auto it = j_.find(key);
    if (it == j_.end()) throw bad(key, "is missing");
    return *it;
  }
  bool null(const std::string& key) const { return at(key).is_null(); }
  // For fields newer than the schema that added none: absent means unset.
  bool has(const std::string& key) const { return j_.contains(key); }

  std::string str(const std::string& key) const {
    const nlohmann::json& v = at(key);
    if (!v.is_string()) throw bad(key, v.dump() + " is not a string");
    return v.get<std::string>();
  }

  bool flag(const std::string& key) const {
    const nlohmann::json& v = at(key);
    if (!v.is_boolean()) throw bad(key, v.dump() + " is not true or false");
    return v.get<bool>();
  }

  template <typename T>
  T number(const std::string& key) const {
    return number_in<T>(at(key), name(key));
  }

  std::vector<std::string> strings(const std::string& key) const {
    const nlohmann::json& v = at(key);
    if (!v.is_array()) throw bad(key, "is not a list");
    std::vector<std::string> out;
    for (size_t i = 0; i < v.size(); ++i) {
      if (!v[i].is_string()) throw bad(key, v[i].dump() + " is not a string");
      out.push_back(v[i].get<std::string>());
    }
    return out;
  }

  // An id per direction (PolicyIds).
  std::array<uint32_t, 2> pair(const std::string& key) const {
    const nlohmann::json& v = at(key);
    if (!v.is_array() || v.size() != 2) throw bad(key, v.dump() + " is not a pair of ids");
    return {number_in<uint32_t>(v[0], name(key) + "[0]"), number_in<uint32_t>(v[1], name(key) + "[1]")};
  }

  Ipv4 ip(const std::string& key) const {
    auto a = Ipv4::parse(str(key));
    if (!a) throw bad(key, at(key).dump() + " is not an IPv4 address");
    return *a;
  }

  Ipv6 ip6(const std::string& key) const {
    auto a = Ipv6::parse(str(key));
    if (!a) throw bad(key, at(key).dump() + " is not an IPv6 address");
    return *a;
  }

  Ipv6Cidr cidr6(const std::string& key) const {
    auto c = Ipv6Cidr::parse(str(key));
    if (!c) throw bad(key, at(key).dump() + " is not an IPv6 prefix");
    return *c;
  }

  Ipv4Cidr cidr(const std::string& key) const {
    auto c = Ipv4Cidr::parse(str(key));
    if (!c) throw bad(key, at(key).dump() + " is not an IPv4 prefix without host bits");
    return *c;
  }

  Mac mac(const std::string& key) const {
    auto m = parse_mac(str(key));
    if (!m) throw bad(key, at(key).dump() + " is not a MAC address");
    return *m;
  }

  TcMode mode(const std::string& key) const {
    auto m = parse_tc_mode(str(key));
    if (!m) throw bad(key, at(key).dump() + " is not tcx or clsact");
    return *m;
  }

  Fields object(const std::string& key) const { return Fields(at(key), name(key)); }

  std::vector<Fields> list(const std::string& key) const {
    const nlohmann::json& v = at(key);
    if (!v.is_array()) throw bad(key, "is not a list");
    std::vector<Fields> out;
    for (size_t i = 0; i < v.size(); ++i) out.emplace_back(v[i], name(key) + "[" + std::to_string(i) + "]");
    return out;
  }

 private:
  template <typename T>
  static T number_in(const nlohmann::json& v, const std::string& field) {
    bool fits = v.is_number_unsigned() ? std::in_range<T>(v.get<uint64_t>())
                                       : v.is_number_integer() && std::in_range<T>(v.get<int64_t>());
    if (!fits)
      throw Error(Errc::failed, field + ": " + v.dump() + " is not an integer in " +
                                    std::to_string(std::numeric_limits<T>::min()) + ".." +
                                    std::to_string(std::numeric_limits<T>::max()));
    return v.is_number_unsigned() ? static_cast<T>(v.get<uint64_t>()) : static_cast<T>(v.get<int64_t>());
  }

  const nlohmann::json& j_;
  std::string path_;
};

}  // namespace ebpfnet
