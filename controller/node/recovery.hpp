// What a killed operation left, taken back or finished from its journal.
#pragma once

#include "ebpfnet/node_txn.hpp"

namespace ebpfnet::recovery {

// Endpoints the journal was removing are removed; endpoints it was adding
// and the state does not hold are taken apart, whatever part of them was
// made; flows of ports it was unpublishing are forgotten; namespaces it was
// making for a node that has no state are deleted when they are ours. Then
// every map rebuilt from the state says what the state says again. The
// caller saves the state and drops the journal.
void run(NodeTxn& txn, const Journal& j);

}  // namespace ebpfnet::recovery
