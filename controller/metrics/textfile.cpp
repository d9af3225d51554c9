#include "ebpfnet/metrics/textfile.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "ebpfnet/error.hpp"
#include "ebpfnet/fd.hpp"

namespace ebpfnet::metrics {
namespace {

void write_all(int fd, std::string_view data, const std::string& what) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_errno(errno, "writing " + what);
    data.remove_prefix(static_cast<size_t>(n));
  }
}

}  // namespace

void write_textfile(const std::filesystem::path& path, std::string_view content) {
  const std::string file = path.filename().string();
  if (file.empty() || file == "." || file == "..")
    throw Error(Errc::usage, "textfile " + path.string() + " names no file (e.g. /var/lib/node_exporter/ebpfnet.prom)");
  const std::filesystem::path dir = path.has_parent_path() ? path.parent_path() : ".";
  UniqueFd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dfd.valid()) throw_errno(errno, "textfile " + path.string() + ": opening its directory " + dir.string());

  // Not *.prom, so node_exporter never reads it half-written.
  const std::string tmp = "." + file + "." + std::to_string(::getpid()) + ".tmp";
  UniqueFd fd(::openat(dfd.get(), tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
  if (!fd.valid()) throw_errno(errno, "textfile " + path.string() + ": creating " + (dir / tmp).string());
  try {
    write_all(fd.get(), content, (dir / tmp).string());
    if (::fsync(fd.get()) != 0) throw_errno(errno, "textfile " + path.string() + ": fsync");
    fd.reset();
    if (::renameat(dfd.get(), tmp.c_str(), dfd.get(), file.c_str()) != 0)
      throw_errno(errno, "textfile " + path.string() + ": renaming " + tmp + " over it");
  } catch (...) {
    ::unlinkat(dfd.get(), tmp.c_str(), 0);
    throw;
  }
  // Makes the rename survive a crash; should this fail, the file in place
  // is still whole, so there is nothing to report.
  ::fsync(dfd.get());
}

}  // namespace ebpfnet::metrics
