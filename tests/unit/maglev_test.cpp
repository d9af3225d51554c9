// Maglev tables: every slot filled, shares by weight, the same table in any
// order, and few slots moving when one backend changes.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "ebpfnet/abi.h"
#include "ebpfnet/maglev.hpp"

namespace ebpfnet {
namespace {

constexpr uint32_t kM = EBPFNET_MAGLEV_SIZE;

std::vector<MaglevBackend> backends(int n, uint32_t first_id = 1) {
  std::vector<MaglevBackend> out;
  for (int i = 0; i < n; ++i)
    out.push_back({first_id + uint32_t(i), "10.240.0." + std::to_string(10 + i) + ":8080", 1});
  return out;
}

std::map<uint32_t, size_t> shares(const std::vector<uint32_t>& t) {
  std::map<uint32_t, size_t> n;
  for (uint32_t id : t) n[id]++;
  return n;
}

// Slots whose backend changed, among those that held a backend in both tables.
double moved(const std::vector<uint32_t>& a, const std::vector<uint32_t>& b, uint32_t changed_id) {
  size_t n = 0, comparable = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i] == changed_id || b[i] == changed_id) continue;
    ++comparable;
    n += a[i] != b[i];
  }
  return double(n) / double(comparable);
}

TEST(Maglev, EveryBackendGetsAnEqualShare) {
  const auto t = maglev_table(backends(10), kM);
  ASSERT_EQ(t.size(), kM);
  const auto n = shares(t);
  ASSERT_EQ(n.size(), 10u);
  for (const auto& [id, count] : n) EXPECT_NEAR(double(count) / kM, 0.1, 0.001) << "backend " << id;
}

TEST(Maglev, SharesFollowWeights) {
  auto bs = backends(3);
  bs[1].weight = 2;
  bs[2].weight = 5;
  auto n = shares(maglev_table(bs, kM));
  EXPECT_NEAR(double(n[1]) / kM, 1.0 / 8, 0.002);
  EXPECT_NEAR(double(n[2]) / kM, 2.0 / 8, 0.002);
  EXPECT_NEAR(double(n[3]) / kM, 5.0 / 8, 0.002);
}

TEST(Maglev, OrderOfBackendsDoesNotMatter) {
  auto bs = backends(7);
  const auto t = maglev_table(bs, kM);
  std::reverse(bs.begin(), bs.end());
  EXPECT_EQ(maglev_table(bs, kM), t);
}

TEST(Maglev, NoBackendNoTable) { EXPECT_TRUE(maglev_table({}, kM).empty()); }

// The point of Maglev: removing or adding one backend of ten moves the
// slots of that backend, and under 2% of the others'.
TEST(Maglev, OneBackendChangeMovesFewOtherSlots) {
  const auto ten = backends(10);
  const auto before = maglev_table(ten, kM);
  std::vector<MaglevBackend> nine(ten.begin(), ten.end() - 1);
  const double removed = moved(before, maglev_table(nine, kM), ten.back().id);
  auto eleven = ten;
  eleven.push_back({99, "10.240.0.99:8080", 1});
  const double added = moved(before, maglev_table(eleven, kM), 99);
  std::cout << "Maglev M=" << kM << ", 10 backends: removing one moves " << removed * 100
            << "% of the other slots, adding one " << added * 100 << "%\n";
  EXPECT_LT(removed, 0.02);
  EXPECT_LT(added, 0.02);
}

}  // namespace
}  // namespace ebpfnet
