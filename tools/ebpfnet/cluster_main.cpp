// ebpfnet-cluster: the cluster commands (ebpfnet cluster ... runs this).
#include "app.hpp"

int main(int argc, char** argv) {
  using namespace ebpfnet::cli;
  return run(argc, argv, add_cluster_commands);
}
