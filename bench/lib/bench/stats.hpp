// Median, min and max of samples.
#pragma once

#include <chrono>
#include <cstddef>
#include <vector>

namespace ebpfnet::bench {

struct Summary {
  double median = 0, min = 0, max = 0;
  size_t n = 0;
};

// Of an empty vector: n = 0 and zeros.
Summary summarize(std::vector<double> v);

// Milliseconds from t0 to now.
double ms_since(std::chrono::steady_clock::time_point t0);

}  // namespace ebpfnet::bench
