// An endpoint's JSON layout: a row of the endpoint table, an element of
// "endpoints" in state files of schema 7 and older, and of a journal's
// "adding". Written once (state.cpp), so a field added to the record flows
// through all three.
#pragma once

#include <nlohmann/json.hpp>

#include "ebpfnet/state.hpp"

namespace ebpfnet {

nlohmann::json endpoint_to_json(const EndpointRecord& e);
// Errc::failed naming the field that is missing or not of its type.
EndpointRecord endpoint_from_json(const nlohmann::json& j);

}  // namespace ebpfnet
