#!/usr/bin/env bash
# Control-plane cost of an endpoint: ebpfnet against the same wiring done
# with separate `ip` commands (namespace, veth with the peer in it, loopback,
# address, routes, node-side address/route/neighbour), in one run, on a
# sandbox node. Prints medians in ms and the peak RSS of ebpfnet.
#   bench/controlplane.sh [BUILD_DIR] [SINGLE_RUNS] [BATCH]
set -euo pipefail
build=${1:-build}
runs=${2:-20}
batch=${3:-100}
bin=$(realpath "$build/tools/ebpfnet")
id=$(printf '%04x' $((RANDOM)))
node=cpb-$id
state=$(mktemp -d /tmp/ebpfnet-bench-XXXXXX)
E=("$bin" --state-dir "$state" --node "$node")

cleanup() {
  "$bin" --state-dir "$state" node delete "$node" >/dev/null 2>&1 || true
  for ns in $(ip netns list | awk '{print $1}' | grep "^cpi$id-" || true); do ip netns del "$ns"; done
  ip netns del "cpn$id" 2>/dev/null || true
  rm -rf "$state"
}
trap cleanup EXIT INT TERM

now() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.2f", m/1e6}'; }

"$bin" --state-dir "$state" node create "$node" --cidr 10.250.0.0/16 >/dev/null
"${E[@]}" attach >/dev/null

# The baseline node: a plain namespace with the same pool.
ipn=cpn$id
ip netns add "$ipn"
ip -n "$ipn" link set lo up
ip_add() {  # ip_add NAME INDEX
  local ns=cpi$id-$1 host=h$id$1 addr=10.251.$(($2 / 250)).$(($2 % 250 + 2))
  ip netns add "$ns"
  ip -n "$ipn" link add "$host" type veth peer name eth0 netns "$ns"
  ip -n "$ns" link set lo up
  ip -n "$ns" addr add "$addr/32" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" route add 10.251.0.1/32 dev eth0 scope link
  ip -n "$ns" route add default via 10.251.0.1 dev eth0
  ip -n "$ipn" addr add 10.251.0.1/32 dev "$host"
  ip -n "$ipn" link set "$host" up
  ip -n "$ipn" route add "$addr/32" dev "$host" src 10.251.0.1
  ip -n "$ipn" neigh add "$addr" lladdr 02:00:00:00:00:01 dev "$host" nud permanent
}
ip_del() {
  ip -n "$ipn" link del "h$id$1"
  ip netns del "cpi$id-$1"
}

single() {  # single add|del ebpfnet|ip -> one line per run (ns)
  for i in $(seq 1 "$runs"); do
    t0=$(now)
    if [ "$2" = ebpfnet ]; then "${E[@]}" endpoint "$1" "s$i" >/dev/null
    elif [ "$1" = add ]; then ip_add "s$i" "$i"
    else ip_del "s$i"; fi
    echo $(($(now) - t0))
  done
}

batch_run() {  # batch add|del ebpfnet|ip -> total ns
  t0=$(now)
  for i in $(seq 1 "$batch"); do
    if [ "$2" = ebpfnet ]; then "${E[@]}" endpoint "$1" "b$i" >/dev/null
    elif [ "$1" = add ]; then ip_add "b$i" "$((i + runs))"
    else ip_del "b$i"; fi
  done
  echo $(($(now) - t0))
}

e_add=$(single add ebpfnet | median); e_del=$(single del ebpfnet | median)
i_add=$(single add ip | median); i_del=$(single del ip | median)
eb_add=$(batch_run add ebpfnet | median); eb_del=$(batch_run del ebpfnet | median)
ib_add=$(batch_run add ip | median); ib_del=$(batch_run del ip | median)

rss_kb=$( { /usr/bin/time -f '%M' "${E[@]}" endpoint add rss >/dev/null; } 2>&1 | tail -1)
"${E[@]}" endpoint del rss >/dev/null

printf '| operation | ebpfnet (ms) | ip commands (ms) | speed-up |\n|---|---|---|---|\n'
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1fx", b / a}'; }
printf '| endpoint add, median of %s | %s | %s | %s |\n' "$runs" "$e_add" "$i_add" "$(ratio "$e_add" "$i_add")"
printf '| endpoint del, median of %s | %s | %s | %s |\n' "$runs" "$e_del" "$i_del" "$(ratio "$e_del" "$i_del")"
printf '| %s endpoints added in a row | %s | %s | %s |\n' "$batch" "$eb_add" "$ib_add" "$(ratio "$eb_add" "$ib_add")"
printf '| %s endpoints deleted in a row | %s | %s | %s |\n' "$batch" "$eb_del" "$ib_del" "$(ratio "$eb_del" "$ib_del")"
printf '\npeak RSS of `ebpfnet endpoint add`: %s KiB\n' "$rss_kb"
