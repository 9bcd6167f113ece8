#!/usr/bin/env bash
# tools/slurm_cluster.sh - a real, throw-away SLURM cluster on this one machine
# for slurmgen development and CI (Debian 12 / Slurm 22.05 from Debian, root).
#
#   bash tools/slurm_cluster.sh up              # install what is missing, configure, start
#   bash tools/slurm_cluster.sh status          # daemons we own, scontrol ping, sinfo, sacct
#   bash tools/slurm_cluster.sh down            # stop exactly what `up` started
#   bash tools/slurm_cluster.sh down --purge    # ... and drop state, logs, accounting DB, config
#
# What `up` builds (no systemd needed; every daemon is started by hand):
#   munged -> mariadbd -> slurmdbd -> slurmctld -> one slurmd per virtual node
#   * N virtual nodes node1..nodeN, all on 127.0.0.1, each slurmd started with
#     `slurmd -N nodeI` on its own port (PORT_BASE+i) with its own spool/pid/log.
#     Heterogeneous jobs need one node per component (backfill reserves whole
#     nodes), hence several nodes even on one box.
#   * Each node advertises CPUS CPUs whatever the hardware has
#     (SlurmdParameters=config_overrides = deliberate oversubscription).
#   * Accounting through slurmdbd + MariaDB, so `sacct` works. submitit polls
#     job state ONLY via sacct; without it a killed/cancelled job never looks done.
#   * CI-friendly timings: AuthInfo=cred_expire=10 plus sched_interval=5 make a
#     requeued job restart after ~12-15 s instead of >= 121 s; KillWait=5;
#     finished jobs stay visible in squeue/scontrol for MinJobAge=300 s.
#     Time limits are still only enforced every ~30 s (1-min limit -> ~88 s).
#
# Idempotent: re-running `up` while the cluster is up starts nothing and takes
# well under a second; a changed config (e.g. other NODES/CPUS) restarts only
# the slurm daemons this script started. Packages are installed only when a
# binary is missing, so a warm `up` takes a few seconds.
#
# Ownership: every daemon `up` starts is recorded in $STATE/owned/<name> as
# "<pid> <comm> <starttime>"; `down` signals only those pids and only if pid,
# comm and start time still match (no pkill/killall). A munged or mariadbd that
# was already running before `up` is used but never recorded, hence never stopped.
#
# Environment knobs:
#   SLURMGEN_CLUSTER_NODES=3         number of virtual nodes
#   SLURMGEN_CLUSTER_CPUS=4          CPUs advertised per node (oversubscribed)
#   SLURMGEN_CLUSTER_MEM_MB=0        RealMemory per node in MB (0 = 90% of RAM / NODES)
#   SLURMGEN_CLUSTER_GPUS=0          fake "gpu" GRES per node (char devices, no real GPU)
#   SLURMGEN_CLUSTER_NAME=slurmgen   ClusterName
#   SLURMGEN_CLUSTER_PARTITION=debug default partition
#   SLURMGEN_CLUSTER_PORT_BASE=6900  node i listens on BASE+i (stay clear of 6817-6819:
#                                    slurmctld 6817, slurmd default 6818, slurmdbd 6819)
#   SLURMGEN_CLUSTER_STATE=/var/lib/slurmgen-cluster  ownership records, pid files,
#                                    slurmctld/slurmd spool, logs
#   SLURMGEN_CLUSTER_TIMEOUT=120     seconds to wait for any one daemon / the nodes
#   SLURMGEN_CLUSTER_NO_INSTALL=0    1 = never run apt-get (fail if something is missing)
#   SLURMGEN_CLUSTER_DB_PASS=slurmgen-local  password of the local-only MariaDB user "slurm"
#
# Exit status: 0 on success; 1 with a message on stderr when not root, when
# packages are missing and apt-get is unavailable, or when a daemon fails.
# `status` exits 1 when the controller does not answer.
set -euo pipefail
export PATH=$PATH:/usr/sbin:/sbin

NODES=${SLURMGEN_CLUSTER_NODES:-3}
CPUS=${SLURMGEN_CLUSTER_CPUS:-4}
MEM_MB=${SLURMGEN_CLUSTER_MEM_MB:-0}
GPUS=${SLURMGEN_CLUSTER_GPUS:-0}
CLUSTER=${SLURMGEN_CLUSTER_NAME:-slurmgen}
PARTITION=${SLURMGEN_CLUSTER_PARTITION:-debug}
PORT_BASE=${SLURMGEN_CLUSTER_PORT_BASE:-6900}
STATE=${SLURMGEN_CLUSTER_STATE:-/var/lib/slurmgen-cluster}
TIMEOUT=${SLURMGEN_CLUSTER_TIMEOUT:-120}
NO_INSTALL=${SLURMGEN_CLUSTER_NO_INSTALL:-0}
DB_PASS=${SLURMGEN_CLUSTER_DB_PASS:-slurmgen-local}
DB_NAME=slurm_acct_db
DB_USER=slurm

ETC=/etc/slurm
MARKER="# written by slurmgen tools/slurm_cluster.sh"
OWNED=$STATE/owned
PIDS=$STATE/run
SPOOL=$STATE/spool
LOGS=$STATE/log
MYSQL_RUN=/run/mysqld          # mariadbd runs as "mysql" and must own its pid/socket dir

CLOCK0=$(date +%s%N)
say() {
  local ms=$(( ($(date +%s%N) - CLOCK0) / 1000000 ))
  printf '[slurm_cluster %d.%03ds] %s\n' $((ms / 1000)) $((ms % 1000)) "$*"
}
fail() { echo "slurm_cluster: ERROR: $*" >&2; exit 1; }

# ------------------------------------------------------------------ process bookkeeping
# proc_start PID -> kernel start time of PID (field 22 of /proc/PID/stat), empty if gone
proc_start() { [ -r "/proc/$1/stat" ] && sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $20}'; }
# proc_is PID COMM [START] -> PID is alive (not a zombie: PID 1 here reaps slowly),
# runs COMM and, when given, started at START (protects against pid reuse)
proc_is() {
  local pid=${1:-} comm=$2 start=${3:-} st
  [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$comm" ] || return 1
  st=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{print $1}')
  [ -n "$st" ] && [ "$st" != Z ] || return 1
  [ -z "$start" ] || [ "$(proc_start "$pid")" = "$start" ]
}
pidfile_is() { local p; p=$(cat "$1" 2>/dev/null || true); proc_is "$p" "$2"; }
STARTED_SOMETHING=0
own() { # name pid comm
  mkdir -p "$OWNED"
  echo "$2 $3 $(proc_start "$2")" > "$OWNED/$1"
  STARTED_SOMETHING=1
}
owned_alive() { # name -> 0 if the recorded daemon still runs
  local pid comm start
  [ -s "$OWNED/$1" ] || return 1
  read -r pid comm start < "$OWNED/$1"
  proc_is "$pid" "$comm" "$start"
}
stop_owned() { # name [grace_s]: TERM, then KILL after grace; forget the record
  local name=$1 grace=${2:-30} pid comm start i
  [ -f "$OWNED/$name" ] || return 0
  read -r pid comm start < "$OWNED/$name" || true
  if proc_is "$pid" "$comm" "$start"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do proc_is "$pid" "$comm" "$start" || break; sleep 0.1; done
    if proc_is "$pid" "$comm" "$start"; then
      say "$name (pid $pid) ignored SIGTERM for ${grace}s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true; sleep 0.3
    fi
    say "stopped $name (pid $pid)"
  else
    say "$name (pid ${pid:-?}) was no longer running"
  fi
  rm -f "$OWNED/$name"
}
# wait_until DESC [--watch NAME] CMD... : poll CMD; give up after TIMEOUT or when
# the watched owned daemon has died (then point at its log)
wait_until() {
  local desc=$1 watch="" t0; shift
  if [ "${1:-}" = --watch ]; then watch=$2; shift 2; fi
  t0=$(date +%s)
  until "$@" >/dev/null 2>&1; do
    if [ -n "$watch" ] && ! owned_alive "$watch"; then fail "$desc: $watch died (logs in $LOGS)"; fi
    (( $(date +%s) - t0 < TIMEOUT )) || fail "timed out after ${TIMEOUT}s waiting for $desc (logs in $LOGS)"
    sleep 0.2
  done
}
tcp_listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
need_free_port() { ! tcp_listening "$1" || fail "port $1 ($2) is already in use by another process"; }

need_root() { [ "$(id -u)" = 0 ] || fail "must run as root (it installs packages and starts system daemons); try: sudo bash $0 $*"; }

# ------------------------------------------------------------------ up: 1. packages
ensure_packages() {
  local missing=() pair
  # binary:package - install only what is absent (no Recommends: those are mostly -dev packages)
  for pair in slurmctld:slurmctld slurmd:slurmd sinfo:slurm-client munged:munge \
              slurmdbd:slurmdbd mariadbd:mariadb-server mariadb:mariadb-client; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$NO_INSTALL" = 1 ] && fail "missing packages (${missing[*]}) and SLURMGEN_CLUSTER_NO_INSTALL=1"
  command -v apt-get >/dev/null 2>&1 || fail "missing packages (${missing[*]}) and apt-get is not available (Debian/Ubuntu only)"
  say "installing ${missing[*]}"
  # Without an init system package scripts must not try to start services:
  # provide a policy-rc.d that denies it unless one is already there.
  local tmp_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; tmp_policy=1
  fi
  local rc=0
  {
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -qq update &&
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -qq -y install --no-install-recommends "${missing[@]}"
  } > "$LOGS/apt.log" 2>&1 || rc=$?
  [ "$tmp_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
  [ "$rc" = 0 ] || { tail -n 20 "$LOGS/apt.log" >&2; fail "apt-get failed (full log: $LOGS/apt.log)"; }
  say "packages installed"
}

# ------------------------------------------------------------------ up: 2. configuration
# install_if_changed SRC DST MODE -> returns 0 when DST was (re)written
install_if_changed() {
  if cmp -s "$1" "$2"; then rm -f "$1"; return 1; fi
  if [ -f "$2" ] && ! grep -qF "$MARKER" "$2" && [ ! -f "$2.before-slurmgen" ]; then
    cp -p "$2" "$2.before-slurmgen"; say "kept the previous $2 as $2.before-slurmgen"
  fi
  install -m "$3" "$1" "$2"; rm -f "$1"; return 0
}

write_config() { # sets CONFIG_CHANGED
  CONFIG_CHANGED=0
  local version mem i tmp gres_types="" gres_node=""
  version=$(slurmd -V 2>/dev/null | awk '{print $2}' || true)   # sinfo -V needs a config; slurmd -V does not
  mem=$MEM_MB
  if [ "$mem" = 0 ]; then mem=$(awk -v n="$NODES" '/^MemTotal:/ {print int($2 / 1024 * 0.9 / n)}' /proc/meminfo); fi
  if [ "$GPUS" -gt 0 ]; then gres_types="GresTypes=gpu"; gres_node=" Gres=gpu:$GPUS"; fi

  tmp=$(mktemp)
  {
    echo "$MARKER (slurm $version): $NODES virtual nodes x $CPUS CPUs on 127.0.0.1"
    echo "ClusterName=$CLUSTER"
    echo "SlurmctldHost=localhost"
    echo "SlurmUser=root"
    echo "AuthType=auth/munge"
    echo "# a requeued job may start again only after cred_expire+1 s (default 120 s)"
    echo "AuthInfo=cred_expire=10"
    echo "SchedulerType=sched/backfill"
    echo "SchedulerParameters=bf_interval=2,sched_interval=5,bf_hetjob_immediate"
    echo "SelectType=select/cons_tres"
    echo "SelectTypeParameters=CR_Core"
    echo "ProctrackType=proctrack/linuxproc"
    echo "TaskPlugin=task/none"
    echo "MpiDefault=none"
    echo "MailProg=/bin/true"
    echo "# node definitions may exceed the real hardware: oversubscription on purpose"
    echo "SlurmdParameters=config_overrides"
    echo "ReturnToService=2"
    echo "KillWait=5"
    echo "InactiveLimit=0"
    echo "MinJobAge=300"
    echo "StateSaveLocation=$SPOOL/ctld"
    echo "SlurmdSpoolDir=$SPOOL/%n"
    echo "SlurmctldPidFile=$PIDS/slurmctld.pid"
    echo "SlurmdPidFile=$PIDS/slurmd-%n.pid"
    echo "SlurmctldLogFile=$LOGS/slurmctld.log"
    echo "SlurmdLogFile=$LOGS/slurmd-%n.log"
    echo "SlurmctldDebug=info"
    echo "SlurmdDebug=info"
    echo "JobCompType=jobcomp/none"
    echo "JobAcctGatherType=jobacct_gather/linux"
    echo "JobAcctGatherFrequency=30"
    echo "AccountingStorageType=accounting_storage/slurmdbd"
    echo "AccountingStorageHost=localhost"
    [ -n "$gres_types" ] && echo "$gres_types"
    for ((i = 1; i <= NODES; i++)); do
      echo "NodeName=node$i NodeHostname=node$i NodeAddr=127.0.0.1 Port=$((PORT_BASE + i)) CPUs=$CPUS Boards=1 SocketsPerBoard=1 CoresPerSocket=$CPUS ThreadsPerCore=1 RealMemory=$mem$gres_node State=UNKNOWN"
    done
    echo "PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP"
  } > "$tmp"
  install_if_changed "$tmp" "$ETC/slurm.conf" 644 && CONFIG_CHANGED=1

  if [ "$GPUS" -gt 0 ]; then
    # gres/gpu needs File= entries (else the node goes INVAL) and they must be character
    # devices; /dev/null clones outside /dev do the job without pretending to be real GPUs
    local g files
    mkdir -p "$SPOOL/fakegpu"
    for ((g = 0; g < GPUS; g++)); do [ -c "$SPOOL/fakegpu/gpu$g" ] || mknod "$SPOOL/fakegpu/gpu$g" c 1 3; done
    if [ "$GPUS" = 1 ]; then files=$SPOOL/fakegpu/gpu0; else files="$SPOOL/fakegpu/gpu[0-$((GPUS - 1))]"; fi
    tmp=$(mktemp)
    printf '%s\nNodeName=node[1-%d] Name=gpu File=%s\n' "$MARKER" "$NODES" "$files" > "$tmp"
    install_if_changed "$tmp" "$ETC/gres.conf" 644 && CONFIG_CHANGED=1
  elif [ -f "$ETC/gres.conf" ] && grep -qF "$MARKER" "$ETC/gres.conf"; then
    rm -f "$ETC/gres.conf"; CONFIG_CHANGED=1
  fi

  tmp=$(mktemp)
  cat > "$tmp" <<EOF
$MARKER
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
DebugLevel=info
LogFile=$LOGS/slurmdbd.log
PidFile=$PIDS/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=$DB_USER
StoragePass=$DB_PASS
StorageLoc=$DB_NAME
EOF
  # slurmdbd refuses a slurmdbd.conf readable by others
  install_if_changed "$tmp" "$ETC/slurmdbd.conf" 600 || true
  if [ "$CONFIG_CHANGED" = 1 ]; then say "wrote $ETC/slurm.conf"; fi
}

# A changed slurm.conf while our slurm daemons run: restart them (only ours).
restart_on_config_change() {
  [ "$CONFIG_CHANGED" = 1 ] || return 0
  local f any=0
  for f in "$OWNED"/slurmd-* "$OWNED"/slurmctld; do [ -f "$f" ] && any=1; done
  [ "$any" = 1 ] || return 0
  say "configuration changed: restarting the slurm daemons this script started"
  for f in "$OWNED"/slurmd-*; do [ -f "$f" ] && stop_owned "$(basename "$f")" 30; done
  stop_owned slurmctld 30
}

# ------------------------------------------------------------------ up: 3. daemons
start_munge() {
  if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then say "munged: already running"; return; fi
  if [ ! -s /etc/munge/munge.key ]; then    # normally created by the package's postinst
    mkdir -p /etc/munge
    mungekey --create --force --keyfile=/etc/munge/munge.key 2>/dev/null \
      || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  fi
  chown munge:munge /etc/munge /etc/munge/munge.key; chmod 700 /etc/munge; chmod 400 /etc/munge/munge.key
  install -d -o munge -g munge -m 755 /run/munge
  install -d -o munge -g munge /var/lib/munge /var/log/munge
  rm -f /run/munge/munged.pid
  runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
  wait_until "munged pid file" test -s /run/munge/munged.pid
  own munged "$(cat /run/munge/munged.pid)" munged
  wait_until munged --watch munged sh -c 'munge -n | unmunge'
  say "munged: started (pid $(cat /run/munge/munged.pid))"
}

start_mariadb() {
  if mariadb -e 'SELECT 1' >/dev/null 2>&1; then
    say "mariadb: already running"
  else
    install -d -o mysql -g mysql "$MYSQL_RUN"
    if [ ! -d /var/lib/mysql/mysql ]; then
      say "mariadb: initialising /var/lib/mysql"
      mariadb-install-db --user=mysql --datadir=/var/lib/mysql --auth-root-authentication-method=socket \
        > "$LOGS/mariadb-install.log" 2>&1 || fail "mariadb-install-db failed (see $LOGS/mariadb-install.log)"
    fi
    # pid file must live in a mysql-owned dir; own session so it outlives this shell
    rm -f "$MYSQL_RUN/mysqld.pid"
    setsid /usr/sbin/mariadbd --user=mysql --datadir=/var/lib/mysql \
      --pid-file="$MYSQL_RUN/mysqld.pid" --socket="$MYSQL_RUN/mysqld.sock" \
      --bind-address=127.0.0.1 --innodb-lock-wait-timeout=900 \
      >> "$LOGS/mariadb.log" 2>&1 < /dev/null &
    local launcher=$!
    # record the pid from mariadbd's own pid file: right after the fork $! may not have exec'd yet
    wait_until "mariadbd pid file" sh -c "test -s '$MYSQL_RUN/mysqld.pid' || ! kill -0 $launcher"
    pidfile_is "$MYSQL_RUN/mysqld.pid" mariadbd || fail "mariadbd exited at start (see $LOGS/mariadb.log)"
    own mariadbd "$(cat "$MYSQL_RUN/mysqld.pid")" mariadbd
    wait_until mariadb --watch mariadbd mariadb -e 'SELECT 1'
    say "mariadb: started (pid $(cat "$MYSQL_RUN/mysqld.pid"))"
  fi
  mariadb -e "CREATE DATABASE IF NOT EXISTS $DB_NAME;
              CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
              ALTER USER '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
              GRANT ALL ON $DB_NAME.* TO '$DB_USER'@'localhost';" \
    || fail "could not create the accounting database/user in mariadb"
}

# start_slurm_daemon NAME COMM PIDFILE PORT READY_CMD -- START_CMD...
# (READY_CMD is run by bash, polled until it succeeds)
start_slurm_daemon() {
  local name=$1 comm=$2 pidfile=$3 port=$4 ready=$5; shift 6
  if pidfile_is "$pidfile" "$comm"; then say "$name: already running"; return 0; fi
  need_free_port "$port" "$name"
  rm -f "$pidfile"
  "$@" > /dev/null 2>> "$LOGS/$name.stderr" < /dev/null || fail "$name did not start (see $LOGS/$name.stderr and $LOGS)"
  wait_until "$name pid file" test -s "$pidfile"
  own "$name" "$(cat "$pidfile")" "$comm"
  wait_until "$name" --watch "$name" bash -c "$ready"
  say "$name: started (pid $(cat "$pidfile"), port $port)"
}

nodes_usable() {
  local n
  n=$(sinfo -h -N -p "$PARTITION" -o '%N %T' 2>/dev/null | sort -u | grep -cE ' (idle|mixed|allocated|completing|planned)$' || true)
  [ "${n:-0}" -ge "$NODES" ]
}

cmd_up() {
  need_root up
  mkdir -p "$STATE" "$OWNED" "$PIDS" "$SPOOL/ctld" "$LOGS" "$ETC"
  ensure_packages
  write_config
  restart_on_config_change

  start_munge
  start_mariadb
  start_slurm_daemon slurmdbd slurmdbd "$PIDS/slurmdbd.pid" 6819 "true </dev/tcp/127.0.0.1/6819" -- slurmdbd
  start_slurm_daemon slurmctld slurmctld "$PIDS/slurmctld.pid" 6817 "scontrol ping | grep -q 'is UP'" -- slurmctld
  local i n
  for ((i = 1; i <= NODES; i++)); do
    n=node$i
    mkdir -p "$SPOOL/$n"
    start_slurm_daemon "slurmd-$n" slurmd "$PIDS/slurmd-$n.pid" $((PORT_BASE + i)) true -- slurmd -N "$n"
  done

  # every node usable; nodes left DOWN/DRAINED by an earlier run get an explicit resume
  local t0; t0=$(date +%s)
  until nodes_usable; do
    if (( $(date +%s) - t0 >= 5 )); then
      for n in $(sinfo -h -N -p "$PARTITION" -t down,drain,drained,draining,fail -o '%N' 2>/dev/null | sort -u); do
        scontrol update NodeName="$n" State=RESUME >/dev/null 2>&1 || true
      done
    fi
    (( $(date +%s) - t0 < TIMEOUT )) || { sinfo -N -l >&2 || true; fail "nodes did not become idle within ${TIMEOUT}s"; }
    sleep 0.2
  done
  # slurmctld registers the cluster in slurmdbd by itself; wait for that so sacct works
  wait_until "cluster '$CLUSTER' registered in slurmdbd" \
    sh -c "sacctmgr -n -P show cluster format=cluster | grep -qx '$CLUSTER'"
  wait_until "sacct" sacct -n -X -j 1
  # end-to-end check only after a (re)start: a no-op re-run must not queue behind busy nodes
  if [ "$STARTED_SOMETHING" = 1 ]; then
    timeout 60 srun -p "$PARTITION" -N1 -n1 -t 1 true || fail "'srun true' failed on the fresh cluster"
  fi
  sinfo
  say "cluster '$CLUSTER' is up: $NODES nodes x $CPUS CPUs, gpus/node=$GPUS, accounting via slurmdbd (state: $STATE)"
}

# ------------------------------------------------------------------ down
cmd_down() {
  need_root down
  local purge=0 arg f
  for arg in "$@"; do
    case $arg in --purge) purge=1 ;; *) fail "unknown option for down: $arg (only --purge)" ;; esac
  done
  if ls "$OWNED"/* >/dev/null 2>&1; then
    # cancel jobs while controller and nodes still run, so no job outlives its slurmd
    if owned_alive slurmctld; then
      local jobs
      jobs=$(squeue -h -o %A 2>/dev/null | sort -u | tr '\n' ' ' || true)
      if [ -n "${jobs// /}" ]; then
        say "cancelling jobs: $jobs"
        # shellcheck disable=SC2086
        scancel $jobs 2>/dev/null || true
        for ((f = 0; f < 300; f++)); do [ -z "$(squeue -h -o %A 2>/dev/null)" ] && break; sleep 0.1; done
      fi
    fi
    for f in "$OWNED"/slurmd-*; do [ -f "$f" ] && stop_owned "$(basename "$f")"; done
    stop_owned slurmctld
    stop_owned slurmdbd
    if [ "$purge" = 1 ] && mariadb -e 'SELECT 1' >/dev/null 2>&1; then
      mariadb -e "DROP DATABASE IF EXISTS $DB_NAME" && say "dropped database $DB_NAME"
    fi
    stop_owned mariadbd
    stop_owned munged
    for f in "$OWNED"/*; do [ -f "$f" ] && say "WARNING: unknown record left untouched: $f"; done
  else
    say "nothing recorded in $OWNED: no daemon of ours to stop"
    if [ "$purge" = 1 ] && mariadb -e 'SELECT 1' >/dev/null 2>&1; then
      mariadb -e "DROP DATABASE IF EXISTS $DB_NAME" && say "dropped database $DB_NAME"
    fi
  fi
  if [ "$purge" = 1 ]; then
    if ls "$OWNED"/* >/dev/null 2>&1; then fail "not purging $STATE: some recorded daemons are still listed"; fi
    rm -rf "$STATE"
    for f in slurm.conf slurmdbd.conf gres.conf; do
      if [ -f "$ETC/$f" ] && grep -qF "$MARKER" "$ETC/$f"; then rm -f "$ETC/$f"; fi
      if [ -f "$ETC/$f.before-slurmgen" ]; then mv "$ETC/$f.before-slurmgen" "$ETC/$f"; fi
    done
    say "purged $STATE and the generated config in $ETC"
  fi
  say "down"
}

# ------------------------------------------------------------------ status
cmd_status() {
  local rc=0 f pid comm start
  echo "== daemons started by slurm_cluster.sh ($OWNED)"
  if ls "$OWNED"/* >/dev/null 2>&1; then
    for f in "$OWNED"/*; do
      read -r pid comm start < "$f" || true
      if proc_is "$pid" "$comm" "$start"; then echo "  $(basename "$f"): pid $pid running"
      else echo "  $(basename "$f"): pid $pid NOT running"; rc=1; fi
    done
  else
    echo "  (none)"
  fi
  if ! command -v sinfo >/dev/null 2>&1; then echo "== slurm is not installed (run: $0 up)"; return 1; fi
  echo "== scontrol ping"
  scontrol ping 2>&1 | sed 's/^/  /' || true
  if ! scontrol ping 2>/dev/null | grep -q 'is UP'; then echo "controller is DOWN"; return 1; fi
  echo "== sinfo"
  sinfo -N -o '%N %P %T %c %m %E' 2>&1 | sed 's/^/  /' || rc=1
  echo "== accounting"
  if sacctmgr -n -P show cluster format=cluster 2>/dev/null | grep -q .; then
    echo "  clusters in slurmdbd: $(sacctmgr -n -P show cluster format=cluster | tr '\n' ' ')"
    echo "  recent jobs (sacct, last hour):"
    sacct -X -a -S now-1hour -o JobID,JobName%20,State,ExitCode,Elapsed 2>&1 | tail -n 10 | sed 's/^/    /'
  else
    echo "  sacct/slurmdbd NOT reachable"; rc=1
  fi
  echo "== queue"
  squeue 2>&1 | sed 's/^/  /' || rc=1
  return $rc
}

usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; }

case ${1:-} in
  up)     shift; cmd_up "$@" ;;
  down)   shift; cmd_down "$@" ;;
  status) shift; cmd_status "$@" ;;
  -h|--help|help) usage ;;
  *) usage >&2; exit 2 ;;
esac
