// Base64 (RFC 4648, standard alphabet, padded): etcd's JSON gateway carries
// every key and value this way.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace ebpfnet::cluster {

std::string base64_encode(std::string_view bytes);
// nullopt when text is not padded base64 of the standard alphabet.
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace ebpfnet::cluster
