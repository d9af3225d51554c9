#include "bench/report.hpp"

#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>

#include "bench/metrics.hpp"
#include "bench/process.hpp"

namespace ebpfnet::bench {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

std::string num(double v) {
  char b[64];
  double a = std::fabs(v);
  if (a >= 10000) std::snprintf(b, sizeof b, "%.0f", v);
  else if (a >= 100) std::snprintf(b, sizeof b, "%.1f", v);
  else if (a >= 1) std::snprintf(b, sizeof b, "%.2f", v);
  else std::snprintf(b, sizeof b, "%.3f", v);
  return b;
}

std::string ratio_text(const json& r) {
  if (r.is_null()) return "";
  return num(r["median"]) + "x (" + num(r["min"]) + "-" + num(r["max"]) + ")";
}

std::string dp_label(const json& row) {
  std::string s = row["datapath"];
  if (row.contains("rules")) s += " @" + std::to_string(row["rules"].get<int>());
  if (row.contains("services")) s += " @" + std::to_string(row["services"].get<int>()) + " svc";
  return s;
}

std::string chart_label(const json& row) {
  std::string s = row["datapath"];
  if (row.contains("rules")) s += ", " + std::to_string(row["rules"].get<int>()) + " rules";
  if (row.contains("services")) s += ", " + std::to_string(row["services"].get<int>()) + " services";
  return s;
}

// The targets a group summary carries (results[GROUP]["targets"]), one line each.
std::vector<std::string> target_lines(const json& results) {
  std::vector<std::string> out;
  for (auto& [group, summary] : results.items()) {
    if (!summary.is_object() || !summary.contains("targets")) continue;
    for (const auto& t : summary["targets"]) {
      const std::string goal = t["op"].get<std::string>() + " " + num(t["goal"].get<double>());
      std::string verdict = t["met"].is_null() ? "not measured" : (t["met"].get<bool>() ? "met" : "MISSED");
      std::string value = t["value"].is_number() ? num(t["value"].get<double>()) : "-";
      out.push_back(group + ": " + t["what"].get<std::string>() + " = " + value + " (target " + goal + "): " + verdict);
    }
  }
  return out;
}

std::string ratios_text(const json& row) {
  std::string s;
  for (auto& [k, v] : row["ratios"].items()) s += (s.empty() ? "" : "; ") + k + " " + ratio_text(v);
  return s;
}

std::string title_of(const std::string& metric, const json& results) {
  const MetricDef* d = find_metric(metric);
  std::string t = d ? d->title : metric;
  if (metric.rfind("cp_", 0) == 0 && metric.find("batch") != std::string::npos)
    t += " (" + std::to_string(results["options"].value("cp_batch", 0)) + ")";
  return t;
}

// Rows grouped by metric in catalogue order.
std::vector<std::pair<std::string, std::vector<json>>> by_metric(const json& results) {
  std::vector<std::pair<std::string, std::vector<json>>> out;
  for (const auto& def : metric_defs()) {
    std::vector<json> rows;
    for (const auto& r : results["summary"])
      if (r["metric"] == def.id) rows.push_back(r);
    if (!rows.empty()) out.emplace_back(def.id, rows);
  }
  return out;
}

}  // namespace

std::string markdown_report(const json& results) {
  std::ostringstream o;
  const auto& m = results["machine"];
  const auto& opt = results["options"];
  o << "# ebpfnet bench results\n\n";
  o << "Run " << results.value("started", "") << ", " << (opt.value("quick", false) ? "quick" : "standard")
    << " suite, " << opt.value("rounds", 0) << " round(s) of " << opt.value("duration_s", 0)
    << " s per measurement, datapaths interleaved round by round; client on CPU "
    << opt["placement"].value("client_cpu", 0) << ", server on CPU "
    << opt["placement"].value("server_cpu", 1) << ".\n\n";
  o << "Machine: " << m.value("cpu_model", "") << ", " << m.value("cpus_online", 0)
    << " CPUs, kernel " << m.value("kernel", "") << " (" << m.value("os", "")
    << "), load average at start " << m.value("loadavg_at_start", "")
    << ", rcu_expedited " << m.value("rcu_expedited", "?") << ".\n\n";
  o << "Tools:";
  for (auto& [k, v] : results["tools"].items()) o << " " << k << " `" << v.get<std::string>() << "`;";
  o << "\n\nEach cell: median (min-max) over the rounds. Ratios are taken round by round "
       "against the baseline of the same round, then the median (min-max) of those; for "
       "lower-is-better metrics a ratio below 1 is better.\n\n";
  o << "## Datapaths\n\n| datapath | what it is |\n|---|---|\n";
  for (const auto& d : results["datapaths"])
    o << "| " << d["name"].get<std::string>() << " | " << d["description"].get<std::string>()
      << " |\n";
  o << "\n## Results\n\n";
  for (const auto& [metric, rows] : by_metric(results)) {
    const MetricDef* d = find_metric(metric);
    o << "### " << title_of(metric, results) << " (" << (d ? d->unit : "") << ", "
      << (d && !d->higher_better ? "lower" : "higher") << " is better)\n\n";
    o << "| datapath | median | min | max | ratios |\n|---|---|---|---|---|\n";
    for (const auto& r : rows)
      o << "| " << dp_label(r) << " | " << num(r["median"]) << " | " << num(r["min"]) << " | "
        << num(r["max"]) << " | " << ratios_text(r) << " |\n";
    o << "\n";
  }
  if (auto targets = target_lines(results); !targets.empty()) {
    o << "## Targets\n\n";
    for (const auto& t : targets) o << "- " << t << "\n";
    o << "\n";
  }
  if (results.contains("services") && results["services"].contains("setup")) {
    o << "## Services bench\n\n| datapath | what it is |\n|---|---|\n";
    for (const auto& d : results["services"]["setup"]["datapaths"])
      o << "| " << d["name"].get<std::string>() << " | " << d["description"].get<std::string>() << " |\n";
    o << "\n";
  }
  if (!results["unavailable"].empty()) {
    o << "## Not measured\n\n";
    for (const auto& u : results["unavailable"])
      o << "- " << u["what"].get<std::string>() << ": " << u["reason"].get<std::string>() << "\n";
    o << "\n";
  }
  if (!results["failures"].empty()) {
    o << "## Failed samples\n\n";
    for (const auto& f : results["failures"])
      o << "- round " << f["round"] << " " << f["group"].get<std::string>() << " "
        << f["datapath"].get<std::string>() << ": " << f["error"].get<std::string>() << "\n";
    o << "\n";
  }
  if (!results["notes"].empty()) {
    o << "## Notes\n\n";
    for (const auto& n : results["notes"]) o << "- " << n.get<std::string>() << "\n";
  }
  return o.str();
}

std::string terminal_table(const json& results) {
  std::ostringstream o;
  char line[512];
  std::snprintf(line, sizeof line, "%-44s %-22s %12s %25s  %s\n", "METRIC", "DATAPATH", "MEDIAN",
                "MIN-MAX", "RATIOS (median, round by round)");
  o << line;
  for (const auto& [metric, rows] : by_metric(results)) {
    const MetricDef* d = find_metric(metric);
    std::string t = title_of(metric, results) + ", " + (d ? d->unit : "");
    if (t.size() > 44) t = t.substr(0, 43) + "~";
    for (const auto& r : rows) {
      std::string rs;
      for (auto& [k, v] : r["ratios"].items())
        rs += (rs.empty() ? "" : "  ") + k + " " + num(v["median"]) + "x";
      std::snprintf(line, sizeof line, "%-44s %-22s %12s %25s  %s\n", t.c_str(),
                    dp_label(r).c_str(), num(r["median"]).c_str(),
                    (num(r["min"]) + "-" + num(r["max"])).c_str(), rs.c_str());
      o << line;
      t = "";
    }
  }
  for (const auto& t : target_lines(results)) o << "target: " << t << "\n";
  for (const auto& u : results["unavailable"])
    o << "not measured: " << u["what"].get<std::string>() << ": " << u["reason"].get<std::string>()
      << "\n";
  for (const auto& f : results["failures"])
    o << "FAILED: round " << f["round"] << " " << f["group"].get<std::string>() << " "
      << f["datapath"].get<std::string>() << ": " << f["error"].get<std::string>() << "\n";
  return o.str();
}

std::vector<fs::path> write_charts(const json& results, const fs::path& dir, std::string* warning) {
  std::vector<fs::path> written;
  if (run(Spawn{{"gnuplot", "--version"}}, 10).code != 0) {
    if (warning) *warning = "gnuplot is not installed (apt-get install gnuplot-nox): no charts";
    return written;
  }
  for (const auto& [metric, rows] : by_metric(results)) {
    const MetricDef* d = find_metric(metric);
    fs::path dat = dir / (metric + ".dat"), png = dir / (metric + ".png");
    {
      std::ofstream f(dat);
      for (const auto& r : rows)
        f << '"' << chart_label(r) << "\" " << r["median"].get<double>() << " "
          << r["min"].get<double>() << " " << r["max"].get<double>() << "\n";
    }
    std::string title = title_of(metric, results);
    std::string script =
        "set terminal pngcairo size 900,480 font 'sans,10' noenhanced\n"
        "set output '" + png.string() + "'\n"
        "set title \"" + title + " (" + (d && !d->higher_better ? "lower" : "higher") +
        " is better; bars: median, whiskers: min-max)\"\n"
        "set ylabel \"" + (d ? d->unit : "") + "\"\n"
        "set yrange [0:*]\nset grid ytics\nset key off\n"
        "set style data histogram\nset style histogram errorbars gap 1 lw 1\n"
        "set style fill solid 0.6 border -1\nset boxwidth 0.8\nset xtics rotate by -20\n"
        "plot '" + dat.string() + "' using 2:3:4:xtic(1) lc rgb '#4472c4'\n";
    Result r = run(Spawn{{"gnuplot"}, "", -1, script}, 30);
    std::error_code ec;
    fs::remove(dat, ec);
    if (r.code == 0 && fs::exists(png)) written.push_back(png);
    else if (warning) *warning = "gnuplot failed for " + metric + ": " + r.err.substr(0, 200);
  }
  return written;
}

}  // namespace ebpfnet::bench
