#!/usr/bin/env bash
# A multi-node test bed on one machine: N network namespaces ("nodes") with their own
# addresses on a bridge, for tests of what crosses the network between nodes.
#
#   sudo bash tools/netns_cluster.sh up [N]   # default N=3; idempotent
#   sudo bash tools/netns_cluster.sh down     # removes only what `up` created
#   sudo bash tools/netns_cluster.sh status
#
# Root namespace: bridge sg0 = 10.77.0.1/24 (the driver's node: registry, driver).
# Node k (0-based): namespace sgnode<k>, interface sg0 = 10.77.0.<10+k>/24, loopback up.
# Every node names its routable interface sg0, so `cluster.interface=sg0` resolves to each
# process's own address; `cluster.node_exec=[ip,netns,exec,sgnode{node}]` starts a process
# on node k. Processes in a namespace keep the machine's filesystem (run directory shared,
# as on a cluster); each node's spill store is its own directory (node-<k>).
# The addresses exist only inside the namespaces and on the bridge this script creates.
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
  *) echo "usage: $0 up [N] | down | status" >&2; exit 2 ;;
esac
