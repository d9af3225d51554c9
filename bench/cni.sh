#!/usr/bin/env bash
# CNI ADD and DEL cost: ebpfnet-cni against Debian's reference `bridge`
# plugin with `host-local` IPAM (package containernetworking-plugins), in one
# run, in sandbox namespaces only:
# - ebpfnet-cni wires container namespaces to a sandbox node;
# - the bridge plugin runs inside another sandbox "node" namespace (ip netns
#   exec), so its bridge and veths are made there, with isGateway and ipMasq
#   off (no iptables, no forwarding sysctl) and host-local's dataDir in a
#   temp dir.
# Both get CNI_NETNS of test namespaces. One warm-up ADD/DEL each (the node's
# datapath attach, the bridge's creation) is not counted. `ip netns exec` costs
# the bridge plugin a few ms that a runtime would not pay: its median is
# printed so it can be subtracted.
#   bench/cni.sh [BUILD_DIR] [RUNS]
set -euo pipefail
build=${1:-build}
runs=${2:-20}
plugin=$(realpath "$build/tools/ebpfnet-cni")
ebpfnet=$(realpath "$build/tools/ebpfnet")
ref=/usr/lib/cni
if [ ! -x "$ref/bridge" ] || [ ! -x "$ref/host-local" ]; then
  echo "bench/cni.sh: $ref/bridge and host-local are missing (scripts/bootstrap installs" \
       "containernetworking-plugins)" >&2
  exit 6
fi
id=$(printf '%04x' $((RANDOM)))
node=cnb-$id   # ebpfnet's sandbox node
bnode=cnr-$id  # the namespace the bridge plugin plays the host in
tmp=$(mktemp -d /tmp/ebpfnet-cnibench-XXXXXX)

cleanup() {
  "$ebpfnet" --state-dir "$tmp/state" node delete "$node" >/dev/null 2>&1 || true
  for ns in $(ip netns list | awk '{print $1}' | grep "^cnc$id-" || true); do
    ip netns del "$ns"
  done
  ip netns del "$bnode" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

now() { date +%s%N; }
median() {
  sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.2f", m/1e6}'
}

cat >"$tmp/ebpfnet.json" <<EOF
{"cniVersion": "1.0.0", "name": "bench-ebpfnet", "type": "ebpfnet-cni", "node": "$node",
 "stateDir": "$tmp/state", "logFile": "$tmp/ebpfnet-cni.log"}
EOF
cat >"$tmp/bridge.json" <<EOF
{"cniVersion": "1.0.0", "name": "bench-bridge", "type": "bridge", "bridge": "cnibr0",
 "isGateway": false, "ipMasq": false,
 "ipam": {"type": "host-local", "subnet": "10.252.0.0/24", "dataDir": "$tmp/host-local"}}
EOF

mkdir -p "$tmp/state"
"$ebpfnet" --state-dir "$tmp/state" node create "$node" --cidr 10.251.0.0/24 >/dev/null
"$ebpfnet" --state-dir "$tmp/state" --node "$node" attach >/dev/null
ip netns add "$bnode"
ip -n "$bnode" link set lo up
for i in $(seq 0 "$runs"); do ip netns add "cnc$id-e$i"; ip netns add "cnc$id-b$i"; done

cni() {  # cni ebpfnet|bridge ADD|DEL INDEX
  local env=(CNI_COMMAND="$2" CNI_CONTAINERID="bench$id$1$3" CNI_IFNAME=eth0
             CNI_NETNS="/run/netns/cnc$id-${1:0:1}$3" CNI_PATH="$ref")
  if [ "$1" = ebpfnet ]; then env -i "${env[@]}" "$plugin" <"$tmp/ebpfnet.json" >/dev/null
  else ip netns exec "$bnode" env -i "${env[@]}" "$ref/bridge" <"$tmp/bridge.json" >/dev/null; fi
}

timed() {  # timed ebpfnet|bridge ADD|DEL -> one line per run (ns)
  for i in $(seq 1 "$runs"); do
    t0=$(now)
    cni "$1" "$2" "$i"
    echo $(($(now) - t0))
  done
}

for p in ebpfnet bridge; do cni "$p" ADD 0; cni "$p" DEL 0; done  # warm-up
e_add=$(timed ebpfnet ADD | median); b_add=$(timed bridge ADD | median)
e_del=$(timed ebpfnet DEL | median); b_del=$(timed bridge DEL | median)
wrap=$(for i in $(seq 1 "$runs"); do
  t0=$(now); ip netns exec "$bnode" true; echo $(($(now) - t0))
done | median)

# Every DEL cleaned up: no endpoint left on the node.
eps=$("$ebpfnet" --state-dir "$tmp/state" --node "$node" -o json endpoint list)
[ "$eps" = "[]" ] || { echo "bench/cni.sh: endpoints left after DEL: $eps" >&2; exit 1; }

printf '| operation (median of %s) | ebpfnet-cni (ms) | bridge + host-local (ms) |\n' "$runs"
printf '|---|---|---|\n' 
printf '| ADD | %s | %s |\n| DEL | %s | %s |\n' "$e_add" "$b_add" "$e_del" "$b_del"
printf '\nthe bridge times include `ip netns exec` (for the sandbox only), median %s ms\n' \
  "$wrap"
