// node_exporter's textfile collector reads *.prom files while they may be
// rewritten: a reader must see the old file or the new one, never a part.
#pragma once

#include <filesystem>
#include <string_view>

namespace ebpfnet::metrics {

// Writes content to path through a temp file in the same directory (a name
// node_exporter skips, created O_EXCL|O_NOFOLLOW, so nothing planted there is
// followed or reused), fsync, rename over path (a symlink at path is replaced,
// never followed), fsync of the directory. On any failure the temp file is
// removed, path is as it was, and an Error names the file and the errno text.
void write_textfile(const std::filesystem::path& path, std::string_view content);

}  // namespace ebpfnet::metrics
