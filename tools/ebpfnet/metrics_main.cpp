// ebpfnet-metrics: the metrics command (ebpfnet metrics ... runs this).
#include "app.hpp"

int main(int argc, char** argv) {
  using namespace ebpfnet::cli;
  return run(argc, argv, add_metrics_command);
}
