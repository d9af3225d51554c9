// The Prometheus text exposition format (version 0.0.4): metric families
// with their HELP and TYPE lines, samples with escaped label values. Pure:
// knows nothing of nodes or maps, so the format is unit-tested on its own.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ebpfnet::metrics {

// The Content-Type of what Exposition::text() returns.
inline constexpr const char* kContentType = "text/plain; version=0.0.4; charset=utf-8";

using Labels = std::vector<std::pair<std::string, std::string>>;

enum class MetricType { counter, gauge };

class Family {
 public:
  Family(std::string name, std::string help, MetricType type);

  // Integers are written exactly: a counter of packets must not lose
  // precision past 2^53 the way a double would. A counter never takes a
  // negative or NaN value (std::logic_error).
  Family& add(const Labels& labels, uint64_t value);
  Family& add(const Labels& labels, double value);

  const std::string& name() const { return name_; }
  MetricType type() const { return type_; }
  size_t size() const { return samples_.size(); }
  void write(std::string& out) const;

 private:
  void add_formatted(const Labels& labels, std::string value);

  std::string name_;
  std::string help_;
  MetricType type_;
  std::vector<std::string> samples_;  // each a whole line without its newline
};

class Exposition {
 public:
  // Names follow Prometheus rules ([a-zA-Z_:][a-zA-Z0-9_:]*); a counter's
  // ends in _total. A bad or repeated name is a programming error
  // (std::logic_error), found by the unit tests rather than by a scraper.
  Family& counter(std::string name, std::string help);
  Family& gauge(std::string name, std::string help);

  size_t series() const;  // samples over every family
  std::string text() const;  // families without samples are left out

 private:
  Family& family(std::string name, std::string help, MetricType type);
  std::deque<Family> families_;  // a deque: the references handed out stay valid
};

// Escaping as the format wants it: label values escape backslash, double
// quote and newline; HELP text escapes backslash and newline.
std::string escape_label_value(std::string_view v);
std::string escape_help(std::string_view v);

}  // namespace ebpfnet::metrics
