#include "bench/load.hpp"

#include <unistd.h>

#include <fstream>
#include <sstream>

#include "bench/process.hpp"

namespace ebpfnet::bench {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

// The last line of out that parses as a JSON object.
std::optional<json> last_json(const std::string& out) {
  std::istringstream s(out);
  std::string line;
  std::optional<json> j;
  while (std::getline(s, line)) {
    if (line.empty() || line[0] != '{') continue;
    try {
      j = json::parse(line);
    } catch (...) {
    }
  }
  return j;
}

std::string first_line(const std::string& s) {
  auto t = s;
  while (!t.empty() && (t.front() == '\n' || t.front() == ' ')) t.erase(t.begin());
  return t.substr(0, t.find('\n'));
}

// Starts a server in the server namespace and waits until it is bound.
std::unique_ptr<Background> start_server(const Topology& t, Placement p,
                                         std::vector<std::string> argv, bool udp, uint16_t port) {
  auto s = std::make_unique<Background>(Spawn{std::move(argv), t.server_ns(), p.server_cpu, "", p.nice});
  if (!wait_bound(*s, udp, port)) {
    Result r = s->stop();
    throw std::runtime_error(t.name() + ": server did not bind port " + std::to_string(port) +
                             ": " + first_line(r.out));
  }
  return s;
}

}  // namespace

Tools find_tools(const std::optional<fs::path>& dir, const fs::path& ebpfnet_bin) {
  std::vector<fs::path> where;
  if (dir) {
    where.push_back(*dir);
  } else {
    where.push_back(ebpfnet_bin.parent_path());
    where.push_back(ebpfnet_bin.parent_path() / ".." / "bench");
    where.push_back(ebpfnet_bin.parent_path() / ".." / "lib" / "ebpfnet");
  }
  auto find = [&](const std::string& name) {
    for (const auto& d : where) {
      auto p = d / name;
      if (access(p.c_str(), X_OK) == 0) return fs::weakly_canonical(p).string();
    }
    std::string looked;
    for (const auto& d : where) looked += (looked.empty() ? "" : ", ") + d.string();
    throw std::runtime_error("load tool " + name + " not found (looked in " + looked +
                             "; build it: make -C build " + name + ", or pass --tools DIR)");
  };
  Tools t;
  t.udp_pps = find("udp_pps");
  t.tcp_rr = find("tcp_rr");
  t.tcp_crr = find("tcp_crr");
  return t;
}

CpuTimes cpu_times() {
  std::ifstream f("/proc/stat");
  std::string cpu;
  f >> cpu;
  // user nice system idle iowait irq softirq steal
  double v[8] = {};
  for (double& x : v) f >> x;
  double hz = static_cast<double>(sysconf(_SC_CLK_TCK));
  CpuTimes c;
  c.total = (v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7]) / hz;
  c.busy = (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / hz;
  return c;
}

Measurement measure_tput(const Topology& t, const Tools& tools, Placement p, int streams,
                         int seconds) {
  Measurement m;
  auto server = start_server(t, p, {tools.iperf3, "-4", "-s", "-1", "-p", std::to_string(kTputPort)},
                             false, kTputPort);
  CpuTimes c0 = cpu_times();
  Result r = run(Spawn{{tools.iperf3, "-4", "-c", t.server_ip(), "-p", std::to_string(kTputPort),
                        "-t", std::to_string(seconds), "-P", std::to_string(streams), "-J",
                        "--connect-timeout", "3000"},
                       t.client_ns(), p.client_cpu, "", p.nice},
                 seconds + 20);
  CpuTimes c1 = cpu_times();
  server->stop();
  json j;
  try {
    j = json::parse(r.out);
  } catch (...) {
    m.error = "iperf3 printed no JSON: " + first_line(r.err);
    return m;
  }
  if (j.contains("error")) {
    m.error = "iperf3: " + j["error"].get<std::string>();
    return m;
  }
  const auto& recv = j.at("end").at("sum_received");
  double bps = recv.at("bits_per_second").get<double>();
  double bytes = recv.at("bytes").get<double>();
  std::string id = "tput" + std::to_string(streams) + "_gbps";
  m.values[id] = bps / 1e9;
  if (streams == 1 && bytes > 0) m.values["cpu_s_per_gb"] = (c1.busy - c0.busy) / (bytes / 1e9);
  m.raw = {{"gbps", bps / 1e9},
           {"bytes", bytes},
           {"retransmits", j["end"]["sum_sent"].value("retransmits", 0)},
           {"cpu_utilization_percent", j["end"].value("cpu_utilization_percent", json::object())},
           {"machine_busy_cpu_s", c1.busy - c0.busy}};
  return m;
}

Measurement measure_pps(const Topology& t, const Tools& tools, Placement p, int seconds, int flows,
                        long max_packets, long pps_limit) {
  Measurement m;
  auto server = start_server(t, p,
                             {tools.udp_pps, "recv", std::to_string(kUdpPort),
                              std::to_string(seconds + 15), "300"},
                             true, kUdpPort);
  std::vector<std::string> argv = {tools.udp_pps,          "send", t.server_ip(),
                                   std::to_string(kUdpPort), std::to_string(seconds),
                                   std::to_string(flows)};
  if (max_packets > 0 || pps_limit > 0) {
    argv.push_back(std::to_string(max_packets > 0 ? max_packets : 4'000'000'000L));
    argv.push_back(std::to_string(pps_limit));
  }
  CpuTimes c0 = cpu_times();
  Result s = run(Spawn{argv, t.client_ns(), p.client_cpu, "", p.nice}, seconds + 15);
  // The receiver stops 300 ms after the last datagram.
  Result rcv = server->wait(20);
  CpuTimes c1 = cpu_times();
  auto sj = last_json(s.out);
  auto rj = last_json(rcv.out);
  if (!sj) {
    m.error = "udp_pps send: " + first_line(s.err);
    return m;
  }
  if (!rj) {
    m.error = "udp_pps recv: " + first_line(rcv.out) + first_line(rcv.err);
    return m;
  }
  double sent = (*sj)["sent"].get<double>(), received = (*rj)["received"].get<double>();
  double rx_secs = (*rj)["seconds"].get<double>();
  m.values["pps_tx"] = (*sj)["pps"].get<double>();
  // Received per second over the sender's time: what crossed the datapath per second.
  m.values["pps_rx"] = received / std::max(1e-9, (*sj)["seconds"].get<double>());
  m.values["pps_loss_pct"] = sent > 0 ? 100.0 * (sent - received) / sent : 0;
  if (received > 0) m.values["cpu_s_per_mpkt"] = (c1.busy - c0.busy) / (received / 1e6);
  m.raw = {{"sender", *sj}, {"receiver", *rj}, {"receiver_seconds", rx_secs},
           {"machine_busy_cpu_s", c1.busy - c0.busy}};
  return m;
}

Measurement measure_rr(const Topology& t, const Tools& tools, Placement p, int seconds,
                       const std::string& prefix) {
  Measurement m;
  auto server = start_server(
      t, p, {tools.tcp_rr, "server", std::to_string(kRrPort), std::to_string(seconds + 30)}, false,
      kRrPort);
  Result r = run(Spawn{{tools.tcp_rr, "client", t.server_ip(), std::to_string(kRrPort),
                        std::to_string(seconds)},
                       t.client_ns(), p.client_cpu, "", p.nice},
                 seconds + 15);
  server->stop();
  auto j = last_json(r.out);
  if (!j || r.code != 0) {
    m.error = "tcp_rr: " + (j ? (*j)["error"].get<std::string>() : first_line(r.err));
    return m;
  }
  m.values[prefix + "_tps"] = (*j)["tps"].get<double>();
  m.values[prefix + "_p50_us"] = (*j)["p50_us"].get<double>();
  m.values[prefix + "_p99_us"] = (*j)["p99_us"].get<double>();
  m.raw = *j;
  return m;
}

Measurement measure_crr(const Topology& t, const Tools& tools, Placement p, int seconds,
                        const std::string& prefix) {
  Measurement m;
  auto server = start_server(
      t, p, {tools.tcp_crr, "server", std::to_string(kCrrPort), std::to_string(seconds + 30)},
      false, kCrrPort);
  Result r = run(Spawn{{tools.tcp_crr, "client", t.server_ip(), std::to_string(kCrrPort),
                        std::to_string(seconds), "4"},
                       t.client_ns(), p.client_cpu, "", p.nice},
                 seconds + 15);
  server->stop();
  auto j = last_json(r.out);
  if (!j || r.code != 0) {
    m.error = "tcp_crr: " + (j ? (*j)["first_error"].get<std::string>() : first_line(r.err));
    return m;
  }
  m.values[prefix + "_cps"] = (*j)["conn_per_s"].get<double>();
  m.values[prefix + "_p99_us"] = (*j)["p99_us"].get<double>();
  m.raw = *j;
  return m;
}

}  // namespace ebpfnet::bench
