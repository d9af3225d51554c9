// Median, min and max of samples.
#pragma once

#include <cstddef>
#include <vector>

namespace ebpfnet::bench {

struct Summary {
  double median = 0, min = 0, max = 0;
  size_t n = 0;
};

// Of an empty vector: n = 0 and zeros.
Summary summarize(std::vector<double> v);

}  // namespace ebpfnet::bench
