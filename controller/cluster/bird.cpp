#include "ebpfnet/cluster/bird.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "ebpfnet/cluster/daemon.hpp"
#include "ebpfnet/error.hpp"
#include "ebpfnet/fd.hpp"

namespace ebpfnet::cluster {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// From PATH only (Debian puts bird and birdc in /usr/sbin).
std::string program(const std::string& name) { return find_program(name); }

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// A BIRD symbol may hold letters, digits and '_'; a node name is a DNS label.
std::string symbol(const std::string& node) {
  std::string s = node;
  for (char& ch : s)
    if (ch == '-') ch = '_';
  return s;
}

}  // namespace

std::string bgp_protocol_name(const std::string& node) { return "peer_" + symbol(node); }

std::string render_bird_config(const BgpSelf& self, const std::map<std::string, NodeRecord>& peers) {
  std::ostringstream c;
  c << "# Written by ebpfnet's cluster agent for node " << self.node << " (docs/cluster.md);\n"
    << "# rendered again from the cluster's state and reloaded at every change.\n"
    << "router id " << self.underlay.str() << ";\n"
    << "log stderr all;\n\n"
    << "protocol device { scan time 10; }\n\n"
    << "# The node's pool: the blackhole keeps traffic for an address of it that\n"
    << "# no endpoint has from leaving again, and is what BGP announces.\n"
    << "protocol static pool {\n  ipv4;\n  route " << self.pool.str() << " blackhole;\n}\n\n"
    << "# The peers' pools and the pool's blackhole into the node's table; learns\n"
    << "# nothing from it. persist: a BIRD that dies leaves the routes in place.\n"
    << "protocol kernel {\n  persist;\n  graceful restart;\n"
    << "  ipv4 { import none; export where source ~ [ RTS_BGP, RTS_STATIC ]; };\n}\n\n"
    << "# iBGP full mesh on the underlay: bound to this node's address only.\n"
    << "template bgp mesh {\n"
    << "  local " << self.underlay.str() << " as " << kClusterAsn << ";\n"
    << "  strict bind yes;\n  direct;\n"
    << "  graceful restart on;\n  graceful restart time " << kGracefulRestartSeconds << ";\n"
    << "  hold time 9;\n  keepalive time 3;\n  connect delay time 1;\n  connect retry time 1;\n  error wait time 1, 10;\n"
    << "  ipv4 { next hop self; import none; export where proto = \"pool\"; };\n}\n";
  for (const auto& [name, p] : peers) {
    if (p.mode != Mode::native) continue;
    c << "\n# " << name << "\nprotocol bgp " << bgp_protocol_name(name) << " from mesh {\n"
      << "  neighbor " << p.underlay.str() << " as " << kClusterAsn << ";\n"
      << "  ipv4 { import where net = " << p.pool.str() << "; };\n}\n";
  }
  return c.str();
}

std::vector<BgpSession> parse_bgp_sessions(const std::string& out) {
  std::vector<BgpSession> sessions;
  std::istringstream lines(out);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream f(line);
    std::string name, proto, table, state, since_date;
    if (!(f >> name >> proto >> table >> state >> since_date) || proto != "BGP") continue;
    std::string rest;
    std::getline(f, rest);
    std::istringstream words(rest);
    std::string w, info;
    // "since" may be a date and a time; the info follows it.
    while (words >> w) {
      if (info.empty() && w.find(':') != std::string::npos && w.find_first_not_of("0123456789:.") == std::string::npos)
        continue;
      info += (info.empty() ? "" : " ") + w;
    }
    sessions.push_back({name, state, info});
  }
  return sessions;
}

Bird::Bird(fs::path dir) : dir_(std::move(dir)) {}

std::string Bird::missing() {
  if (program("bird").empty() || program("birdc").empty())
    return "--mode native needs BIRD (bird and birdc): apt-get install bird2";
  return "";
}

bool Bird::write_config(const std::string& text) const {
  {
    std::ifstream in(config());
    std::stringstream old;
    old << in.rdbuf();
    if (in && old.str() == text) return false;
  }
  const fs::path tmp = dir_ / "bird.conf.tmp";
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd.valid()) throw_errno(errno, "writing " + tmp.string());
  if (::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()) || ::fsync(fd.get()) != 0)
    throw_errno(errno, "writing " + tmp.string());
  fd.reset();
  if (::rename(tmp.c_str(), config().c_str()) != 0) throw_errno(errno, "renaming " + tmp.string());
  return true;
}

std::optional<pid_t> Bird::running() const {
  std::ifstream in(pid_file());
  long pid = 0;
  if (!(in >> pid) || pid <= 0) return std::nullopt;
  ::waitpid(static_cast<pid_t>(pid), nullptr, WNOHANG);  // ours and ended: reaped
  std::ifstream cmd("/proc/" + std::to_string(pid) + "/cmdline", std::ios::binary);
  std::string arg;
  bool bird = false, ours = false;
  for (bool first = true; std::getline(cmd, arg, '\0'); first = false) {
    if (first) bird = fs::path(arg).filename() == "bird";
    ours |= arg == socket().string();
  }
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(stat, line);
  const auto close = line.rfind(')');
  const char state = close != std::string::npos && close + 2 < line.size() ? line[close + 2] : 'X';
  if (!bird || !ours || state == 'Z' || state == 'X') return std::nullopt;
  return static_cast<pid_t>(pid);
}

pid_t Bird::start(bool recover, const std::string& tag) const {
  if (std::string why = missing(); !why.empty()) throw Error(Errc::environment, why);
  UniqueFd out(::open(log().c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!out.valid()) throw_errno(errno, "opening " + log().string());
  std::vector<std::string> argv = {program("bird"), "-f", "-c", config().string(), "-s", socket().string(),
                                   "-P", pid_file().string()};
  if (recover) argv.push_back("-R");
  const DaemonId d = spawn_daemon({argv, -1, out.get(), tag});
  // Ready once its control socket answers (it parses its configuration first).
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  for (;;) {
    if (!daemon_alive(d)) {
      std::ifstream in(log());
      std::string line, last;
      while (std::getline(in, line))
        if (!line.empty()) last = line;
      throw Error(Errc::failed, "bird ended at start: " + last + " (" + log().string() + ")");
    }
    if (run_program({program("birdc"), "-s", socket().string(), "show", "status"}).status == 0) return d.pid;
    if (std::chrono::steady_clock::now() > deadline)
      throw Error(Errc::failed, "bird (pid " + std::to_string(d.pid) + ") did not answer on " + socket().string() +
                                    " within 5 s");
    std::this_thread::sleep_for(50ms);
  }
}

std::string Bird::birdc(const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {program("birdc"), "-s", socket().string()};
  argv.insert(argv.end(), args.begin(), args.end());
  const ProgramRun r = run_program(argv);
  // birdc says "Unable to connect" and such with a zero status; BIRD's own
  // errors are numbered 8xxx/9xxx.
  if (r.status != 0 || r.output.find("Unable to connect") != std::string::npos)
    throw Error(Errc::failed, "birdc -s " + socket().string() + " " + args.front() + ": " + trimmed(r.output));
  return r.output;
}

void Bird::reconfigure() const {
  const std::string out = birdc({"configure"});  // the file it was started with
  if (out.find("Reconfigured") == std::string::npos && out.find("Reconfiguration in progress") == std::string::npos &&
      out.find("Reconfiguration already in progress") == std::string::npos)
    throw Error(Errc::failed, "bird refused " + config().string() + ": " + trimmed(out));
}

std::vector<BgpSession> Bird::sessions() const { return parse_bgp_sessions(birdc({"show", "protocols"})); }

bool Bird::stop(int grace_ms) const {
  auto pid = running();
  if (!pid) return true;
  ::kill(*pid, SIGTERM);
  for (int waited = 0; waited < grace_ms; waited += 20) {
    if (!running()) return true;
    std::this_thread::sleep_for(20ms);
  }
  if ((pid = running())) ::kill(*pid, SIGKILL);
  for (int i = 0; i < 100 && running(); ++i) std::this_thread::sleep_for(20ms);
  return !running();
}

}  // namespace ebpfnet::cluster
