#include "ebpfnet/metrics/server.hpp"

#include <httplib.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <thread>

#include "ebpfnet/error.hpp"
#include "ebpfnet/fd.hpp"
#include "ebpfnet/metrics/exposition.hpp"

namespace ebpfnet::metrics {
namespace {

// Only SO_REUSEADDR (a restart rebinds at once despite TIME_WAIT), not
// httplib's default SO_REUSEPORT, with which a second exporter would share
// the port silently instead of failing.
void reuse_addr_only(int sock) {
  int yes = 1;
  ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
}

// httplib says only that binding failed; a bind of our own, with the same
// options, says why.
void check_bindable(const ListenAddress& at) {
  UniqueFd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!s.valid()) throw_errno(errno, "metrics: socket for " + at.str());
  reuse_addr_only(s.get());
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(at.port);
  sa.sin_addr.s_addr = at.ip.be();
  if (::bind(s.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0) return;
  const int err = errno;
  const std::string what = "cannot listen on " + at.str() + ": " + std::strerror(err);
  if (err == EADDRINUSE) throw Error(Errc::exists, what + " (another process listens there)");
  if (err == EADDRNOTAVAIL) throw Error(Errc::usage, what + " (not an address of the node)");
  throw Error(errc_from_errno(err), what);
}

}  // namespace

void serve(const ListenAddress& at, const Netns& ns, const std::function<std::string()>& scrape,
           const std::function<void()>& ready) {
  // Blocked before httplib starts its threads, so they inherit the mask and
  // the signals wait for sigtimedwait below, not for whichever thread runs.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  sigset_t old_mask;
  pthread_sigmask(SIG_BLOCK, &stop_signals, &old_mask);
  struct RestoreMask {
    sigset_t mask;
    ~RestoreMask() { pthread_sigmask(SIG_SETMASK, &mask, nullptr); }
  } restore{old_mask};

  // A scraper that hangs up mid-answer must cost that answer, not the
  // process: httplib writes without MSG_NOSIGNAL.
  struct sigaction ignore {}, old_pipe {};
  ignore.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &ignore, &old_pipe);
  struct RestorePipe {
    struct sigaction action;
    ~RestorePipe() { sigaction(SIGPIPE, &action, nullptr); }
  } restore_pipe{old_pipe};

  httplib::Server svr;
  svr.set_address_family(AF_INET);
  svr.set_socket_options(reuse_addr_only);
  // Scrapes are few; a small pool bounds what a burst of them can take.
  svr.new_task_queue = [] { return new httplib::ThreadPool(2); };
  svr.Get("/metrics", [&](const httplib::Request&, httplib::Response& res) {
    try {
      res.set_content(scrape(), kContentType);
    } catch (const std::exception& e) {
      spdlog::warn("metrics: scrape failed: {}", e.what());
      res.status = 500;
      res.set_content(std::string("scrape failed: ") + e.what() + "\n", "text/plain; charset=utf-8");
    }
  });

  {
    // The socket belongs to the namespace it is made in, whatever thread
    // accepts on it later.
    NetnsGuard in(ns);
    check_bindable(at);
    if (!svr.bind_to_port(at.ip.str(), at.port))
      throw Error(Errc::failed, "cannot listen on " + at.str() + ": " + std::strerror(errno));
  }

  std::atomic<bool> listener_done{false};
  std::thread listener([&] {
    svr.listen_after_bind();
    listener_done = true;
  });
  ready();
  const timespec tick{0, 200 * 1000 * 1000};
  bool stopped = false;
  while (!listener_done) {
    if (sigtimedwait(&stop_signals, nullptr, &tick) >= 0) {
      stopped = true;
      break;
    }
  }
  svr.stop();
  listener.join();
  if (!stopped) throw Error(Errc::failed, "metrics: the server on " + at.str() + " stopped listening");
}

}  // namespace ebpfnet::metrics
