#!/usr/bin/env bash
# A multi-node test bed on one machine: N network namespaces ("nodes") with their own
# addresses on a bridge, for tests of what crosses the network between nodes.
#
#   sudo bash tools/netns_cluster.sh up [N]   # default N=3; idempotent
#   sudo bash tools/netns_cluster.sh down     # removes only what `up` created
#   sudo bash tools/netns_cluster.sh status
#   sudo bash tools/netns_cluster.sh impair K [DELAY_MS JITTER_MS LOSS_PCT]  # node K's link: default 200 50 5
#   sudo bash tools/netns_cluster.sh heal K
#
# Root namespace: bridge sg0 = 10.77.0.1/24 (the driver's node: registry, driver).
# Node k (0-based): namespace sgnode<k>, interface sg0 = 10.77.0.<10+k>/24, loopback up.
# Every node names its routable interface sg0, so `cluster.interface=sg0` resolves to each
# process's own address; `cluster.node_exec=[ip,netns,exec,sgnode{node}]` starts a process
# on node k. Processes in a namespace keep the machine's filesystem (run directory shared,
# as on a cluster); each node's spill store is its own directory (node-<k>).
# The addresses exist only inside the namespaces and on the bridge this script creates.
# `impair` delays and drops node K's frames both ways: with `tc netem` on both ends of its
# veth pair where the kernel has sch_netem, else with tools/netns_linkem.py (a user-space
# relay between the veth and the bridge); it prints which. `heal` undoes either.
set -euo pipefail

BRIDGE=sg0
NET=10.77.0
STATE_DIR=/run/slurmgen-netns
CREATED=$STATE_DIR/created

log() { echo "[netns_cluster] $*"; }
remember() { mkdir -p "$STATE_DIR"; echo "$1" >>"$CREATED"; }

need_root() {
  if [[ $EUID -ne 0 ]]; then echo "netns_cluster.sh: run as root (network namespaces)" >&2; exit 2; fi
  command -v ip >/dev/null || { echo "netns_cluster.sh: needs iproute2 (apt-get install iproute2)" >&2; exit 2; }
}

up() {
  local n=${1:-3}
  need_root
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
    ip addr add "$NET.1/24" dev "$BRIDGE"
    remember "link $BRIDGE"
  fi
  ip link set "$BRIDGE" up
  for ((k = 0; k < n; k++)); do
    local ns=sgnode$k host=sgv$k
    if ! ip netns list | grep -qw "$ns"; then
      ip netns add "$ns"
      remember "netns $ns"
    fi
    if ! ip link show "$host" >/dev/null 2>&1; then
      ip link add "$host" type veth peer name "sgp$k"
      ip link set "sgp$k" netns "$ns"
      ip -n "$ns" link set "sgp$k" name "$BRIDGE"
      ip -n "$ns" addr add "$NET.$((10 + k))/24" dev "$BRIDGE"
      ip link set "$host" master "$BRIDGE"
      remember "link $host"
    fi
    ip link set "$host" up
    ip -n "$ns" link set lo up
    ip -n "$ns" link set "$BRIDGE" up
  done
  log "up: $n nodes (sgnode0..sgnode$((n - 1)): $NET.10..$NET.$((9 + n))), bridge $BRIDGE $NET.1"
}

down() {
  need_root
  for pidfile in "$STATE_DIR"/linkem-*.pid; do [[ -f $pidfile ]] && heal "$(basename "$pidfile" .pid | cut -d- -f2)"; done
  [[ -f $CREATED ]] || { log "nothing to remove"; return 0; }
  tac "$CREATED" | while read -r kind name; do
    case $kind in
      netns) ip netns pids "$name" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
             ip netns del "$name" 2>/dev/null || true ;;
      link) ip link del "$name" 2>/dev/null || true ;;
    esac
  done
  rm -f "$CREATED"
  log "down"
}

impair() {
  local k=$1 delay=${2:-200} jitter=${3:-50} loss=${4:-5}
  need_root
  local netem=(netem delay "${delay}ms" "${jitter}ms" loss "${loss}%")
  if tc qdisc add dev "sgv$k" root "${netem[@]}" 2>/dev/null; then
    ip netns exec "sgnode$k" tc qdisc add dev "$BRIDGE" root "${netem[@]}"
    log "impair sgnode$k: tc netem ${netem[*]:1} (both ways)"
    return 0
  fi
  mkdir -p "$STATE_DIR"
  rm -f "$STATE_DIR/linkem-$k.log"
  python3 "$(dirname "$0")/netns_linkem.py" "sgv$k" "sgd$k" "$BRIDGE" --delay-ms "$delay" --jitter-ms "$jitter" \
    --loss "$loss" >"$STATE_DIR/linkem-$k.log" 2>&1 &
  echo $! >"$STATE_DIR/linkem-$k.pid"
  for _ in $(seq 50); do grep -q "ready:" "$STATE_DIR/linkem-$k.log" && break; kill -0 $! 2>/dev/null || break; sleep 0.1; done
  grep -q "ready:" "$STATE_DIR/linkem-$k.log" || { cat "$STATE_DIR/linkem-$k.log" >&2; exit 1; }
  log "impair sgnode$k: user-space relay (this kernel has no tc netem): ${delay} ms ± ${jitter} ms, ${loss} % loss (both ways)"
}

heal() {
  local k=$1
  need_root
  tc qdisc del dev "sgv$k" root 2>/dev/null || true
  ip netns exec "sgnode$k" tc qdisc del dev "$BRIDGE" root 2>/dev/null || true
  local pidfile=$STATE_DIR/linkem-$k.pid
  if [[ -f $pidfile ]]; then
    local pid; pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
    rm -f "$pidfile"
    tail -n 1 "$STATE_DIR/linkem-$k.log"
  fi
  log "heal sgnode$k"
}

status() {
  ip -br addr show "$BRIDGE" 2>/dev/null || { echo "no bridge $BRIDGE"; return 0; }
  for ns in $(ip netns list | awk '/^sgnode/ {print $1}'); do
    echo "$ns: $(ip -n "$ns" -br -4 addr show "$BRIDGE" | awk '{print $3}')"
  done
}

case ${1:-} in
  up) up "${2:-3}" ;;
  down) down ;;
  status) status ;;
  impair) impair "${2:?node number}" "${@:3}" ;;
  heal) heal "${2:?node number}" ;;
  *) echo "usage: $0 up [N] | down | status | impair K [DELAY_MS JITTER_MS LOSS_PCT] | heal K" >&2; exit 2 ;;
esac
