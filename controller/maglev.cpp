#include "ebpfnet/maglev.hpp"

#include <algorithm>
#include <string_view>

namespace ebpfnet {
namespace {

uint64_t fnv1a64(std::string_view s, uint64_t basis) {
  uint64_t h = basis;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

}  // namespace

std::vector<uint32_t> maglev_table(std::span<const MaglevBackend> backends, uint32_t m) {
  if (backends.empty() || m < 2) return {};
  std::vector<const MaglevBackend*> order;
  for (const auto& b : backends) order.push_back(&b);
  std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->key < b->key; });

  // Backend i fills slots in the order offset, offset + skip, ... (mod m):
  // a permutation of the slots since m is prime and 0 < skip < m.
  struct Walk {
    uint64_t offset, skip, next = 0;
  };
  std::vector<Walk> walks;
  for (const auto* b : order)
    walks.push_back({fnv1a64(b->key, 0xcbf29ce484222325ull) % m,
                     fnv1a64(b->key, 0x84222325cbf29ce4ull) % (m - 1) + 1});

  constexpr uint32_t kEmpty = UINT32_MAX;
  std::vector<uint32_t> table(m, kEmpty);
  uint32_t filled = 0;
  // Each round every backend takes as many slots as its weight: shares
  // follow the weights, and the turns interleave so no backend's
  // preferred slots are all taken before it moves.
  while (true) {
    for (size_t i = 0; i < order.size(); ++i) {
      for (uint32_t w = 0; w < order[i]->weight; ++w) {
        Walk& k = walks[i];
        uint64_t slot = (k.offset + k.next * k.skip) % m;
        while (table[slot] != kEmpty) {
          ++k.next;
          slot = (k.offset + k.next * k.skip) % m;
        }
        table[slot] = order[i]->id;
        ++k.next;
        if (++filled == m) return table;
      }
    }
  }
}

}  // namespace ebpfnet
