#include "ebpfnet/error.hpp"

#include <cerrno>
#include <cstring>

namespace ebpfnet {

Errc errc_from_errno(int err) {
  switch (err) {
    case EEXIST:
    case EBUSY:
    case EADDRINUSE:
      return Errc::exists;
    case ENOENT:
    case ESRCH:
    case ENODEV:
      return Errc::not_found;
    case EPERM:
    case EACCES:
    case EOPNOTSUPP:
      return Errc::environment;
    case EINVAL:
      return Errc::usage;
    default:
      return Errc::failed;
  }
}

void throw_errno(int err, const std::string& context) {
  throw Error(errc_from_errno(err), context + ": " + std::strerror(err));
}

}  // namespace ebpfnet
