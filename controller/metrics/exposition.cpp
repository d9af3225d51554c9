#include "ebpfnet/metrics/exposition.hpp"

#include <charconv>
#include <cmath>
#include <stdexcept>

namespace ebpfnet::metrics {
namespace {

bool valid_name(std::string_view n, bool colon_ok) {
  if (n.empty()) return false;
  for (size_t i = 0; i < n.size(); ++i) {
    const char c = n[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon_ok && c == ':');
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

std::string format_double(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, v);  // shortest form that reads back the same
  return std::string(buf, r.ptr);
}

}  // namespace

std::string escape_label_value(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string escape_help(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

Family::Family(std::string name, std::string help, MetricType type)
    : name_(std::move(name)), help_(std::move(help)), type_(type) {
  if (!valid_name(name_, true)) throw std::logic_error("metric name '" + name_ + "' is not a Prometheus name");
  const bool total = name_.size() > 6 && name_.ends_with("_total");
  if ((type_ == MetricType::counter) != total)
    throw std::logic_error("metric " + name_ + ": counters, and only counters, end in _total");
}

Family& Family::add(const Labels& labels, uint64_t value) {
  add_formatted(labels, std::to_string(value));
  return *this;
}

Family& Family::add(const Labels& labels, double value) {
  if (type_ == MetricType::counter && !(value >= 0))
    throw std::logic_error("counter " + name_ + " cannot be " + format_double(value));
  add_formatted(labels, format_double(value));
  return *this;
}

void Family::add_formatted(const Labels& labels, std::string value) {
  std::string line = name_;
  if (!labels.empty()) {
    line += '{';
    for (size_t i = 0; i < labels.size(); ++i) {
      const auto& [k, v] = labels[i];
      if (!valid_name(k, false) || k.starts_with("__"))
        throw std::logic_error("metric " + name_ + ": label name '" + k + "' is not a Prometheus label name");
      if (i) line += ',';
      line += k + "=\"" + escape_label_value(v) + '"';
    }
    line += '}';
  }
  line += ' ';
  line += value;
  samples_.push_back(std::move(line));
}

void Family::write(std::string& out) const {
  out += "# HELP " + name_ + ' ' + escape_help(help_) + '\n';
  out += "# TYPE " + name_ + (type_ == MetricType::counter ? " counter\n" : " gauge\n");
  for (const auto& s : samples_) out += s + '\n';
}

Family& Exposition::counter(std::string name, std::string help) {
  return family(std::move(name), std::move(help), MetricType::counter);
}

Family& Exposition::gauge(std::string name, std::string help) {
  return family(std::move(name), std::move(help), MetricType::gauge);
}

Family& Exposition::family(std::string name, std::string help, MetricType type) {
  for (const auto& f : families_)
    if (f.name() == name) throw std::logic_error("metric " + name + " is defined twice");
  return families_.emplace_back(std::move(name), std::move(help), type);
}

size_t Exposition::series() const {
  size_t n = 0;
  for (const auto& f : families_) n += f.size();
  return n;
}

std::string Exposition::text() const {
  std::string out;
  for (const auto& f : families_)
    if (f.size()) f.write(out);
  return out;
}

}  // namespace ebpfnet::metrics
