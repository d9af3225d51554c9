// A service's JSON layout: a row of the services table, and an element of
// "services" in state files of schema 6 and older.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "ebpfnet/state.hpp"
#include "json_fields.hpp"

namespace ebpfnet {

nlohmann::json service_to_json(const ServiceRecord& v);
ServiceRecord service_from(const Fields& f);
// Errc::failed naming the field (after the prefix at) that ebpfnet never
// writes: a bad name, id 0, a port of 0, a weight out of range, a backend
// given twice.
void validate_service(const ServiceRecord& v, const std::string& at);

}  // namespace ebpfnet
