// The command line's operation tally beside a node's state: counts add up
// across invocations, a node without a directory records nothing, and the
// file is reached as the state is (no symlink followed).
#include <gtest/gtest.h>

#include <fstream>

#include "ebpfnet/metrics/operations.hpp"
#include "ebpfnet/state.hpp"
#include "support.hpp"

namespace ebpfnet::metrics {
namespace {

namespace fs = std::filesystem;

class MetricsOperations : public testing::Test {
 protected:
  void SetUp() override {
    env_.state_root = root_.path();
    StateStore(env_.state_root, "lab").lock(/*create=*/true);
  }
  test::TempStateDir root_;
  Env env_;
};

TEST_F(MetricsOperations, CountsAddUpAcrossRecords) {
  EXPECT_TRUE(read_operations(env_, "lab").empty());
  record_operation(env_, "lab", "endpoint add", true, 0.5);
  record_operation(env_, "lab", "endpoint add", true, 0.25);
  record_operation(env_, "lab", "endpoint add", false, 1.0);
  record_operation(env_, "lab", "attach", true, 2.0);
  OperationTally t = read_operations(env_, "lab");
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t["endpoint add"].ok, 2u);
  EXPECT_EQ(t["endpoint add"].failed, 1u);
  EXPECT_DOUBLE_EQ(t["endpoint add"].seconds, 1.75);
  EXPECT_EQ(t["attach"].ok, 1u);
  // No temp file left beside the state; the tally has a lock of its own.
  for (const auto& name : test::entries(root_.path() / "lab")) EXPECT_EQ(name.find(".tmp"), std::string::npos) << name;
}

TEST_F(MetricsOperations, NodeWithoutDirectoryRecordsNothing) {
  record_operation(env_, "gone", "attach", true, 1.0);
  EXPECT_FALSE(fs::exists(root_.path() / "gone"));
  EXPECT_TRUE(read_operations(env_, "gone").empty());
}

TEST_F(MetricsOperations, PlantedSymlinkIsNotFollowed) {
  const fs::path target = root_.path() / "precious";
  std::ofstream(target) << "keep\n";
  fs::create_symlink(target, root_.path() / "lab" / "ops.json");
  EXPECT_THROW(record_operation(env_, "lab", "attach", true, 1.0), std::exception);
  EXPECT_TRUE(read_operations(env_, "lab").empty());
  EXPECT_EQ(test::read_file(target), "keep\n");
}

}  // namespace
}  // namespace ebpfnet::metrics
