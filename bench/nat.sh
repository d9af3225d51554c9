#!/usr/bin/env bash
# NAT datapath benchmark: connection rate and throughput through masquerade
# (endpoint -> a server on the sandbox "internet") and through a published port
# (an internet client -> node:15201 -> endpoint:5201), ebpfnet against the same
# traffic through a Linux bridge with iptables MASQUERADE/DNAT (Docker's docker0
# way), both built in this run with the same addresses, measured interleaved
# round by round. Prints a Markdown table of medians (min-max) and the ratio
# ebpfnet/iptables on stdout, progress on stderr, and everything as JSON to -o.
#
#   bench/nat.sh [-b BUILD_DIR] [-r ROUNDS] [-c CRR_SECONDS] [-t IPERF_SECONDS]
#                [-P PARALLEL] [-o JSON_FILE]
#
# Needs root, 2 CPUs, iperf3, iptables (nft or legacy), iproute2, jq, and
# `cmake --build BUILD_DIR --target ebpfnet tcp_crr`.
#
# Safety (DESIGN.md): everything runs in namespaces this script creates, with
# names unique to the run; every `ip`/`iptables`/`sysctl` names its namespace
# (`ip -n NS`, `ip netns exec NS`), none has a route into the root namespace,
# and a trap removes them and stops the servers (by PID) on every exit path.
set -euo pipefail

build=build
rounds=3
crr_seconds=5
tput_seconds=5
parallel=4
out_json=""
# Fixed CPUs, so both datapaths see the same placement: softirq work of a
# veth hop runs on the CPU that sent the packet.
server_cpu=1
client_cpu=0

usage() {
  sed -n '10,11p' "$0" | sed 's/^# *//' >&2
  exit 2
}

while getopts "b:r:c:t:P:o:h" opt; do
  case $opt in
    b) build=$OPTARG ;;
    r) rounds=$OPTARG ;;
    c) crr_seconds=$OPTARG ;;
    t) tput_seconds=$OPTARG ;;
    P) parallel=$OPTARG ;;
    o) out_json=$OPTARG ;;
    *) usage ;;
  esac
done
for n in "$rounds" "$crr_seconds" "$tput_seconds" "$parallel"; do
  [[ $n =~ ^[1-9][0-9]{0,2}$ ]] || { echo "nat.sh: '$n' is not a number from 1 to 999" >&2; exit 2; }
done

die() { echo "nat.sh: $*" >&2; exit 1; }
log() { echo "$*" >&2; }

[ "$(id -u)" = 0 ] || die "needs root (namespaces, iptables inside them)"
[ "$(nproc)" -ge 2 ] || die "needs 2 CPUs (server on CPU $server_cpu, client on CPU $client_cpu)"
for tool in iperf3 jq iptables-restore ss taskset ip; do
  command -v "$tool" >/dev/null || die "$tool is not installed"
done
ebpfnet=$(realpath "$build/tools/ebpfnet")
crr=$(realpath "$build/bench/tcp_crr")
if [ ! -x "$ebpfnet" ] || [ ! -x "$crr" ]; then
  die "build first: cmake --build $build --target ebpfnet tcp_crr"
fi

# ---- names, and the cleanup that removes them ------------------------------

# Unique per run: a random id no namespace on the machine uses yet.
for _ in $(seq 1 20); do
  id=$(printf '%04x' $((RANDOM)))
  ip netns list | grep -qE "^nb[ei]$id" || break
done
eb=nbe$id   # ebpfnet: node nbe<id>, nbe<id>-out (made by node create), nbe<id>-ep
ib=nbi$id   # iptables: the same three roles, made here
state=$(mktemp -d /tmp/ebpfnet-natbench-XXXXXX)
samples=$state/samples.jsonl
E=("$ebpfnet" --state-dir "$state")
server_pid=""

# start_server NS CMD...: CMD in NS on the server CPU; returns once port 5201
# listens. `ip netns exec` and taskset exec, so $! is the server itself.
start_server() {
  local netns=$1
  shift
  ip netns exec "$netns" taskset -c "$server_cpu" "$@" >>"$state/servers.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 50); do
    ip netns exec "$netns" ss -Hltn "sport = :5201" | grep -q . && return 0
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  die "$1 did not listen on 5201 in $netns (see the log: $(tail -3 "$state/servers.log"))"
}

stop_server() {
  [ -n "$server_pid" ] || return 0
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}

cleanup() {
  local rc=$?
  stop_server
  if [ -f "$state/ebpfnet-node" ]; then
    if ! "${E[@]}" node delete "$eb" >/dev/null 2>&1 && [ -d "$state/$eb" ]; then
      log "nat.sh: ebpfnet node delete $eb failed; removing its namespaces and pins by hand"
      rm -rf "/sys/fs/bpf/ebpfnet/$eb"
    fi
  fi
  # Whatever is left (a half-done setup, a failed delete): only names of this run.
  local x
  for x in "$eb-ep" "$eb-out" "$eb" "$ib-ep" "$ib-out" "$ib"; do
    if [ -e "/run/netns/$x" ]; then ip netns del "$x" 2>/dev/null || true; fi
  done
  rm -rf "$state"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- the two sandboxes ------------------------------------------------------

# ns DP ROLE: the namespace playing ROLE (node, out, ep) for datapath DP.
ns() {
  local base=$eb
  [ "$1" = iptables ] && base=$ib
  if [ "$2" = node ]; then echo "$base"; else echo "$base-$2"; fi
}

setup_ebpfnet() {
  touch "$state/ebpfnet-node"  # from here on the trap asks ebpfnet to delete the node
  "${E[@]}" node create "$eb" --cidr 10.240.0.0/24 --uplink-sandbox >/dev/null
  "${E[@]}" --node "$eb" attach >/dev/null
  "${E[@]}" --node "$eb" endpoint add "$eb-ep" --ip 10.240.0.2 >/dev/null
  "${E[@]}" --node "$eb" expose "$eb-ep" 5201/tcp --port 15201 >/dev/null
}

# Docker's way, with ebpfnet's addresses: a bridge carrying the gateway, the
# endpoint's veth enslaved to it, an uplink veth into the "outside", forwarding
# on in the node namespace only, and Docker's rules (FORWARD policy DROP,
# established first, the published port's DNAT + accept, MASQUERADE).
setup_iptables() {
  local n=$ib o=$ib-out e=$ib-ep x
  for x in "$n" "$o" "$e"; do
    ip netns add "$x"
    ip -n "$x" link set lo up
    # ebpfnet turns IPv6 off on its veths; the same here keeps RS/MLD noise out.
    ip netns exec "$x" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
      net.ipv6.conf.default.disable_ipv6=1
  done
  ip -n "$n" link add eth0 type veth peer name eth0 netns "$o"
  ip -n "$o" addr add 198.18.0.1/24 dev eth0
  ip -n "$o" link set eth0 up
  ip -n "$o" addr add 203.0.113.1/32 dev lo
  ip -n "$n" addr add 198.18.0.2/24 dev eth0
  ip -n "$n" link set eth0 up
  ip -n "$n" route add default via 198.18.0.1 dev eth0

  ip -n "$n" link add br0 type bridge
  ip -n "$n" addr add 10.240.0.1/24 dev br0
  ip -n "$n" link set br0 up
  ip -n "$n" link add veth-ep type veth peer name eth0 netns "$e"
  ip -n "$n" link set veth-ep master br0 up
  ip -n "$e" addr add 10.240.0.2/24 dev eth0
  ip -n "$e" link set eth0 up
  ip -n "$e" route add default via 10.240.0.1 dev eth0

  ip netns exec "$n" sysctl -qw net.ipv4.ip_forward=1
  ip netns exec "$n" iptables-restore <<'EOF'
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -o br0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -d 10.240.0.2/32 ! -i br0 -o br0 -p tcp -m tcp --dport 5201 -j ACCEPT
-A FORWARD -i br0 ! -o br0 -j ACCEPT
-A FORWARD -i br0 -o br0 -j ACCEPT
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -d 198.18.0.2/32 -p tcp -m tcp --dport 15201 -j DNAT --to-destination 10.240.0.2:5201
-A POSTROUTING -s 10.240.0.0/24 ! -o br0 -j MASQUERADE
COMMIT
EOF
}

# ---- servers and clients ----------------------------------------------------

# The paths. masquerade: the endpoint connects out to 203.0.113.1 (the outside's
# lo); published: the outside connects to the node's 198.18.0.2:15201, which
# lands on the endpoint's 5201. Servers always listen on 5201.
server_ns() { if [ "$2" = masquerade ]; then ns "$1" out; else ns "$1" ep; fi; }
client_ns() { if [ "$2" = masquerade ]; then ns "$1" ep; else ns "$1" out; fi; }
target() { if [ "$1" = masquerade ]; then echo "203.0.113.1 5201"; else echo "198.18.0.2 15201"; fi; }

# Drops the datapath counted since the last call, as JSON: ebpfnet's per-reason
# counters of the endpoint; conntrack's drop/early_drop/insert_failed for
# iptables (per-netns /proc/net/stat). A dropped SYN shows up as a 1 s stall.
drops_now() {
  if [ "$1" = ebpfnet ]; then
    "${E[@]}" --node "$eb" -o json endpoint list | jq -c '.[0].stats.drops'
  else
    # One line per CPU, hex, columns named by the header (they vary by kernel).
    ip netns exec "$ib" cat /proc/net/stat/nf_conntrack | awk '
      function hex(s,  v, i) {
        v = 0
        for (i = 1; i <= length(s); i++) v = v * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1
        return v
      }
      NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
      { d += hex($col["drop"]); e += hex($col["early_drop"]); f += hex($col["insert_failed"]) }
      END { printf "{\"drop\":%d,\"early_drop\":%d,\"insert_failed\":%d}\n", d, e, f }'
  fi
}
drops_delta() {  # drops_delta BEFORE AFTER -> only the reasons that grew
  jq -cn --argjson a "$1" --argjson b "$2" \
    '$b | with_entries(.value -= ($a[.key] // 0)) | with_entries(select(.value != 0))'
}

# record DP PATH ROUND TEST JSON: one sample line.
record() {
  jq -c --arg dp "$1" --arg path "$2" --argjson round "$3" --arg test "$4" \
    '{dp: $dp, path: $path, round: $round, test: $test} + .' <<<"$5" >>"$samples"
}

# Connection rate: tcp_crr for crr_seconds with `parallel` connections in flight.
measure_crr() {  # measure_crr DP PATH ROUND
  local host port line d0 d1
  read -r host port <<<"$(target "$2")"
  start_server "$(server_ns "$1" "$2")" "$crr" server 5201 $((crr_seconds + 30))
  d0=$(drops_now "$1")
  # Exits 1 when nothing completed; the line still says why.
  line=$(ip netns exec "$(client_ns "$1" "$2")" taskset -c "$client_cpu" \
    "$crr" client "$host" "$port" "$crr_seconds" "$parallel") || true
  d1=$(drops_now "$1")
  stop_server
  [ -n "$line" ] || line='{"conn_per_s":null,"error":"tcp_crr printed nothing"}'
  line=$(jq -c --argjson d "$(drops_delta "$d0" "$d1")" '. + {drops: $d}' <<<"$line")
  record "$1" "$2" "$3" crr "$line"
  log "$(jq -r --arg dp "$1" --arg path "$2" '"  \($dp) \($path) crr: \(.conn_per_s) conn/s, " +
    "p50 \(.p50_us) us, p99 \(.p99_us) us, max \(.max_us) us, timeouts \(.timeouts), errors \(.errors), " +
    "drops \(.drops)"' <<<"$line")"
}

# Throughput: one iperf3 stream, client -> server, for tput_seconds.
measure_tput() {  # measure_tput DP PATH ROUND
  local host port json
  read -r host port <<<"$(target "$2")"
  start_server "$(server_ns "$1" "$2")" iperf3 -4 -s -1 -p 5201 --idle-timeout 30
  json=$(ip netns exec "$(client_ns "$1" "$2")" taskset -c "$client_cpu" \
    iperf3 -4 -c "$host" -p "$port" -t "$tput_seconds" --connect-timeout 3000 -J) || true
  stop_server
  [ -n "$json" ] || json='{"error":"iperf3 printed nothing"}'
  record "$1" "$2" "$3" throughput "$(jq -c '{
      gbps: (if .end.sum_received.bits_per_second then .end.sum_received.bits_per_second / 1e9
             else null end),
      retransmits: .end.sum_sent.retransmits, error: .error}' <<<"$json")"
  log "$(tail -1 "$samples" | jq -r '"  \(.dp) \(.path) iperf3: \(.gbps) Gbit/s, " +
    "retransmits \(.retransmits)\(if .error then ", error: " + .error else "" end)"')"
}

# Both paths work before anything is timed: 20 transactions each must pass.
check_paths() {
  local dp path host port got
  for dp in ebpfnet iptables; do
    for path in masquerade published; do
      read -r host port <<<"$(target "$path")"
      start_server "$(server_ns "$dp" "$path")" "$crr" server 5201 30
      got=$(ip netns exec "$(client_ns "$dp" "$path")" taskset -c "$client_cpu" \
        "$crr" client "$host" "$port" 5 1 20 | jq '.connections') || got=0
      stop_server
      [ "$got" = 20 ] || die "$dp $path: $got of 20 probe connections completed"
    done
  done
}

# ---- report -----------------------------------------------------------------

# Medians, min, max and ratios from the samples, as the JSON document.
summarize() {
  jq -s --argjson rounds "$rounds" --argjson crr_s "$crr_seconds" \
    --argjson tput_s "$tput_seconds" --argjson par "$parallel" \
    --arg kernel "$(uname -r)" --arg date "$(date -u +%FT%TZ)" \
    --argjson scpu "$server_cpu" --argjson ccpu "$client_cpu" '
    def median: sort | if length == 0 then null
      elif length % 2 == 1 then .[length / 2 | floor]
      else (.[length / 2 - 1] + .[length / 2]) / 2 end;
    def stats: {median: median, min: min, max: max, samples: .};
    . as $s
    | [{name: "conn_per_s", unit: "connections/s", test: "crr", better: "higher"},
       {name: "p50_us", unit: "us per connection, p50", test: "crr", better: "lower"},
       {name: "p99_us", unit: "us per connection, p99", test: "crr", better: "lower"},
       {name: "gbps", unit: "Gbit/s, 1 stream", test: "throughput", better: "higher"}] as $metrics
    | def of($dp; $path; $m):
        [$s[] | select(.dp == $dp and .path == $path and .test == $m.test) | .[$m.name]
              | select(. != null)] | stats;
    {run: {date: $date, kernel: $kernel, rounds: $rounds, crr_seconds: $crr_s,
           crr_parallel: $par, iperf3_seconds: $tput_s, server_cpu: $scpu, client_cpu: $ccpu,
           baseline: "Linux bridge + iptables MASQUERADE/DNAT (iptables-nft), conntrack"},
     results: [("masquerade", "published") as $path | $metrics[] as $m
       | {path: $path, metric: $m.name, unit: $m.unit, better: $m.better,
          ebpfnet: of("ebpfnet"; $path; $m), iptables: of("iptables"; $path; $m)}
       | .ratio = (if .ebpfnet.median != null and (.iptables.median // 0) != 0
                   then .ebpfnet.median / .iptables.median else null end)],
     failures: [$s[] | select((.timeouts // 0) + (.errors // 0) > 0 or .error != null
                               or ((.drops // {}) | length) > 0)
                | {dp, path, round, test, timeouts, errors, first_error, drops, error}],
     samples: $s}' "$samples"
}

markdown() {
  echo "| path | metric | ebpfnet median (min-max) | iptables median (min-max) | ebpfnet/iptables |"
  echo "|---|---|---|---|---|"
  jq -r '.results[] | [.path, .unit, .better, .ebpfnet.median, .ebpfnet.min, .ebpfnet.max,
      .iptables.median, .iptables.min, .iptables.max, .ratio] | map(. // "n/a") | @tsv' <<<"$1" |
    awk -F'\t' '
      function f(v, d) { return v == "n/a" ? v : sprintf("%." d "f", v) }
      { d = ($2 ~ /Gbit/) ? 2 : 0
        printf "| %s | %s (%s is better) | %s (%s-%s) | %s (%s-%s) | %s |\n", $1, $2, $3,
          f($4, d), f($5, d), f($6, d), f($7, d), f($8, d), f($9, d), f($10, 2) }'
  jq -r '.run | "\nRounds: \(.rounds), interleaved; tcp_crr \(.crr_seconds) s with \(.crr_parallel) connections in flight, iperf3 \(.iperf3_seconds) s; servers on CPU \(.server_cpu), clients on CPU \(.client_cpu); kernel \(.kernel)."' <<<"$1"
  jq -r 'if (.failures | length) > 0 then "\nTimeouts, errors and datapath drops:\n" +
      (.failures | map("- round \(.round) \(.dp) \(.path) \(.test): timeouts \(.timeouts // 0), errors \(.errors // 0)\(if .first_error and .first_error != "" then " (" + .first_error + ")" else "" end), drops \(.drops // {} | tojson)\(if .error then ", " + .error else "" end)") | join("\n"))
    else "\nNo timeouts, errors or datapath drops." end' <<<"$1"
}

# ---- the run ----------------------------------------------------------------

log "sandboxes: ebpfnet $eb, $eb-out, $eb-ep; iptables $ib, $ib-out, $ib-ep"
setup_ebpfnet
setup_iptables
check_paths

for r in $(seq 1 "$rounds"); do
  log "round $r/$rounds"
  for dp in ebpfnet iptables; do
    # Throughput first: a connection-rate run through masquerade may hold NAT
    # ports for the closing timeout (10 s), which must not starve iperf3's
    # connections; the other datapath's turn lies between it and the next round.
    for path in masquerade published; do measure_tput "$dp" "$path" "$r"; done
    for path in masquerade published; do measure_crr "$dp" "$path" "$r"; done
  done
done

summary=$(summarize)
[ -z "$out_json" ] || printf '%s\n' "$summary" >"$out_json"
markdown "$summary"
