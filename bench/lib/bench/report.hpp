// Writers of a finished run (the results.json document): Markdown, a
// terminal table, and PNG charts drawn by gnuplot.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace ebpfnet::bench {

std::string markdown_report(const nlohmann::json& results);
std::string terminal_table(const nlohmann::json& results);
// One PNG per metric (datapaths side by side, min-max as error bars) in dir.
// Returns the files written; a missing gnuplot is reported in *warning.
std::vector<std::filesystem::path> write_charts(const nlohmann::json& results,
                                                const std::filesystem::path& dir,
                                                std::string* warning);

}  // namespace ebpfnet::bench
