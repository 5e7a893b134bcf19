#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for trying gnnzoo's cluster path and for the `slurm` tests.
#
#   bash scripts/slurm_local.sh start     # install (Debian, root) if missing, configure, start; prints SLURM_CONF
#   bash scripts/slurm_local.sh status    # daemons, node and queue
#   bash scripts/slurm_local.sh stop      # stop the daemons (jobs are killed); the state folder stays for logs
#
# Everything lives in $SLURM_LOCAL_DIR (default /tmp/gnnzoo-slurm): slurm.conf, a munge key and socket, the
# controller's state, spool, logs and pid files. Nothing under /etc is changed, except that /etc/slurm/slurm.conf
# is linked to this cluster's config when that file does not exist (so `sinfo`, `sbatch` work without SLURM_CONF;
# the link is removed on stop). The node gets this machine's cores and 90% of its memory; one partition `local`.
# Ports: $SLURM_LOCAL_PORT (controller, default 6817) and the next one (node daemon).
# Needs root: slurmd runs jobs as their users. There is no accounting database (sacct has nothing); gnnzoo's
# SLURM launchers follow their jobs with squeue and the result files instead.
set -euo pipefail

DIR="${SLURM_LOCAL_DIR:-/tmp/gnnzoo-slurm}"
PORT="${SLURM_LOCAL_PORT:-6817}"
CONF="$DIR/slurm.conf"
export SLURM_CONF="$CONF"

die() { echo "slurm_local: $*" >&2; exit 1; }

need_packages() {
    local missing=()
    for bin in slurmctld slurmd munged sbatch squeue scontrol; do
        command -v "$bin" >/dev/null 2>&1 || missing+=("$bin")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        die "missing ${missing[*]}; install Debian's slurmctld slurmd slurm-client munge (needs root and apt-get)"
    fi
    echo "slurm_local: installing slurmctld slurmd slurm-client munge (apt-get) ..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
}

running() {  # running <pidfile>
    [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

write_conf() {
    local host cpus mem_mb
    host="$(hostname -s)"
    cpus="$(nproc --all)"
    mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) * 9 / 10 / 1024 ))
    cat >"$CONF" <<EOF
# written by gnnzoo scripts/slurm_local.sh: a one-node cluster with its state in $DIR
ClusterName=gnnzoo-local
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$DIR/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
ReturnToService=2
JobRequeue=1
KillWait=10
MinJobAge=600
SchedulerParameters=sched_interval=2
SlurmctldTimeout=30
SlurmdTimeout=60
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=local Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

start() {
    [ "$(id -u)" -eq 0 ] || die "needs root (slurmd runs jobs as their users)"
    need_packages
    if running "$DIR/slurmctld.pid" && running "$DIR/slurmd.pid"; then
        echo "slurm_local: already running ($DIR)"; echo "export SLURM_CONF=$CONF"; return 0
    fi
    mkdir -p "$DIR"/{munge,state,spool,log}
    chmod 700 "$DIR" "$DIR/munge"
    if [ ! -s "$DIR/munge/munge.key" ]; then
        head -c 1024 /dev/urandom >"$DIR/munge/munge.key"
        chmod 400 "$DIR/munge/munge.key"
    fi
    write_conf
    if ! running "$DIR/munge/munged.pid"; then
        munged --force --key-file="$DIR/munge/munge.key" --socket="$DIR/munge/munge.socket" \
            --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/log/munged.log" \
            --seed-file="$DIR/munge/munged.seed" || die "munged did not start (see $DIR/log/munged.log)"
    fi
    [ -e /etc/slurm/slurm.conf ] || { mkdir -p /etc/slurm && ln -s "$CONF" /etc/slurm/slurm.conf; }
    running "$DIR/slurmctld.pid" || slurmctld -f "$CONF" || die "slurmctld did not start (see $DIR/log/slurmctld.log)"
    running "$DIR/slurmd.pid" || slurmd -f "$CONF" || die "slurmd did not start (see $DIR/log/slurmd.log)"
    local t
    for t in $(seq 1 60); do
        if sinfo -h -o "%t" 2>/dev/null | grep -qE "^(idle|mix|alloc)"; then
            echo "slurm_local: up ($(sinfo -h -o '%P %D node(s) %c CPUs %m MB' | head -1)); state in $DIR"
            echo "export SLURM_CONF=$CONF"
            return 0
        fi
        sleep 1
    done
    die "the node did not come up in 60 s (see $DIR/log/)"
}

stop() {
    local pid
    [ -f "$CONF" ] && scancel --full --quiet --partition=local 2>/dev/null || true
    for f in slurmd.pid slurmctld.pid munge/munged.pid; do
        if running "$DIR/$f"; then
            pid="$(cat "$DIR/$f")"
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
            kill -9 "$pid" 2>/dev/null || true
        fi
    done
    if [ -L /etc/slurm/slurm.conf ] && [ "$(readlink /etc/slurm/slurm.conf)" = "$CONF" ]; then
        rm -f /etc/slurm/slurm.conf
    fi
    echo "slurm_local: stopped (logs in $DIR/log)"
}

status() {
    local ok=0
    for f in munge/munged.pid slurmctld.pid slurmd.pid; do
        if running "$DIR/$f"; then echo "$(basename "$f" .pid): running"; else echo "$(basename "$f" .pid): stopped"; ok=1; fi
    done
    if [ $ok -eq 0 ]; then
        sinfo
        squeue
        echo "export SLURM_CONF=$CONF"
    fi
    return $ok
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status   (state in \$SLURM_LOCAL_DIR, default /tmp/gnnzoo-slurm)" >&2; exit 2 ;;
esac
