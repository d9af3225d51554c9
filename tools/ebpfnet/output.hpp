// Tables for people; JSON (-o json) for scripts.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ebpfnet/node.hpp"
#include "ebpfnet/trace.hpp"

namespace ebpfnet::cli {

// Prints rows under a header with columns padded to their widest cell.
void print_table(const std::vector<std::string>& header,
                 const std::vector<std::vector<std::string>>& rows);

nlohmann::json to_json(const EndpointView& v);
nlohmann::json to_json(const EndpointStats& s);
std::vector<std::string> endpoint_row(const EndpointView& v);
const std::vector<std::string>& endpoint_header();
std::string drops_summary(const DropCounts& d);

// ebpfnet trace's result: one line per decision, or JSON (cmd_trace.cpp).
void print_trace(const TraceResult& r);
nlohmann::json trace_json(const std::string& node, const TraceResult& r);

// "tcp", "udp", "icmp" or the protocol number.
std::string proto_name(uint8_t proto);
// "10.0.0.1:80" (ICMP: the address alone, its "ports" are the echo id).
std::string addr_port(__be32 addr, __be16 port, uint8_t proto);

}  // namespace ebpfnet::cli
