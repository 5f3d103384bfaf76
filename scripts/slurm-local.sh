#!/usr/bin/env bash
# A real single-node Slurm cluster on localhost, for tests and CI (tests/test_slurm.py):
#   scripts/slurm-local.sh start [--install]   munged (a key of its own), slurmctld, slurmd
#   scripts/slurm-local.sh status              the daemons' pids and `sinfo`; exit 0 when all run
#   scripts/slurm-local.sh stop                stop what `start` started (by pid file); idempotent
#
# Root only (slurmd runs jobs as their users). Everything it makes lives under
# $SVAR_SLURM_DIR (default /tmp/svar-slurm): munge key and socket, slurmctld state, slurmd spool,
# logs, pid files. The one file outside it is /etc/slurm/slurm.conf: the executor plugin's job
# step drops every SLURM_* variable (SLURM_CONF too) before its inner `srun`, so the config has
# to be where Slurm looks by default. `start` refuses to replace a slurm.conf it did not write
# (set SVAR_SLURM_FORCE=1 to move it aside; `stop` puts it back).
#
# The node is CPU only: no GresTypes, so a profile must not ask for GPUs here
# (workflow/profiles/slurm-test maps them to nothing). No accounting daemon: `sacct` does not
# answer, so clients ask `squeue` for job states; MinJobAge=300 keeps finished jobs visible to it.
#
# `--install` apt-get installs munge, slurmctld, slurmd and slurm-client first (see
# .ci/slurm-deps.sh); without it nothing is installed.
set -euo pipefail
# the daemons live in /usr/sbin, which a non-root PATH (or a CI step's) may lack
export PATH="$PATH:/usr/sbin:/sbin"

DIR=${SVAR_SLURM_DIR:-/tmp/svar-slurm}
CONF=/etc/slurm/slurm.conf
MARK="# written by svar scripts/slurm-local.sh"
CLUSTER=svar-local
PARTITION=local
CTLD_PORT=${SVAR_SLURM_CTLD_PORT:-6817}
SLURMD_PORT=${SVAR_SLURM_SLURMD_PORT:-6818}
PACKAGES=(munge slurmctld slurmd slurm-client)

say() { echo "slurm-local: $*" >&2; }
# the folder named by a slurm.conf this script wrote ("" for any other file)
conf_dir() { [ -e "$CONF" ] && grep -qxF "$MARK" "$CONF" && sed -n 's/^# svar-slurm-dir: //p' "$CONF" | head -1; true; }
die() { say "$*"; exit 1; }

# whether a process runs (a zombie waiting for init to reap it does not)
running() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [ "${stat%% *}" != Z ]
}

# pid from a pid file when that process is alive and is the daemon named (guards pid reuse)
live_pid() {  # live_pid <pidfile> <comm>
    local pidfile=$1 comm=$2 pid
    [ -s "$pidfile" ] || return 1
    pid=$(tr -dc '0-9' <"$pidfile")
    [ -n "$pid" ] && running "$pid" || return 1
    [ "$(cat "/proc/$pid/comm")" = "$comm" ] || return 1
    echo "$pid"
}

stop_pid() {  # stop_pid <pidfile> <comm>: TERM, wait up to 15 s, then KILL
    local pidfile=$1 comm=$2 pid i
    if pid=$(live_pid "$pidfile" "$comm"); then
        kill -TERM "$pid" 2>/dev/null || true
        for i in $(seq 1 150); do
            running "$pid" || break
            sleep 0.1
        done
        if running "$pid"; then
            say "$comm ($pid) did not stop on TERM; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        say "stopped $comm ($pid)"
    fi
    rm -f "$pidfile"
}

install_packages() {
    [ "$(id -u)" = 0 ] || die "--install needs root"
    command -v apt-get >/dev/null || die "--install needs apt-get"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
}

# the node's CPUs and memory as slurmd itself measures them (`slurmd -C`), else nproc and
# /proc/meminfo. The topology is left out on purpose: Slurm then counts every CPU as a core, so
# under CR_Core_Memory a 1-thread job takes 1 CPU even where the machine has 2 threads per core.
node_hardware() {
    local line cpus mem
    line=$(slurmd -C 2>/dev/null | grep -m1 '^NodeName=' || true)
    cpus=$(sed -n 's/.*\bCPUs=\([0-9]\+\).*/\1/p' <<<"$line")
    mem=$(sed -n 's/.*\bRealMemory=\([0-9]\+\).*/\1/p' <<<"$line")
    [ -n "$cpus" ] || cpus=$(nproc)
    [ -n "$mem" ] || mem=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
    # leave the OS a little: 95 % of the memory, at least 512 MB
    mem=$(( mem * 95 / 100 ))
    [ "$mem" -ge 512 ] || mem=512
    echo "CPUs=$cpus RealMemory=$mem"
}

write_conf() {
    local hw
    hw=$(node_hardware)
    mkdir -p "$(dirname "$CONF")"
    cat >"$CONF" <<EOF
$MARK
# svar-slurm-dir: $DIR
# A single-node test cluster; state, logs and pids under that folder. Removed by \`slurm-local.sh stop\`.
ClusterName=$CLUSTER
SlurmctldHost=localhost
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge/munge.socket
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# no systemd and no cgroups on CI machines and containers
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# the node is back to service at once after a restart, whatever state it was left in
ReturnToService=2
# trust this file over what slurmd measures (CI machines differ), so the node never drains
SlurmdParameters=config_overrides
# finished jobs stay visible to squeue for 5 minutes: the status queries need that without sacct
MinJobAge=300
InactiveLimit=0
KillWait=5
Waittime=0
SlurmdTimeout=300
NodeName=localhost NodeAddr=127.0.0.1 $hw State=UNKNOWN
PartitionName=$PARTITION Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
}

start_munge() {
    local m=$DIR/munge
    id munge >/dev/null 2>&1 || die "no munge user: install munge (scripts/slurm-local.sh start --install)"
    install -d -o munge -g munge -m 0755 "$m"  # clients need x on the socket's folder
    rm -f "$m/munge.key"
    mungekey --create --keyfile="$m/munge.key" >/dev/null 2>&1 \
        || dd if=/dev/urandom of="$m/munge.key" bs=1 count=1024 status=none
    chown munge:munge "$m/munge.key"
    chmod 0400 "$m/munge.key"
    runuser -u munge -- munged --key-file="$m/munge.key" --socket="$m/munge.socket" \
        --pid-file="$m/munged.pid" --log-file="$m/munged.log" --seed-file="$m/munged.seed"
    for _ in $(seq 1 50); do
        live_pid "$m/munged.pid" munged >/dev/null && [ -S "$m/munge.socket" ] && break
        sleep 0.1
    done
    live_pid "$m/munged.pid" munged >/dev/null || die "munged did not start; see $m/munged.log"
    # munge's round trip, on our own socket
    munge --socket="$m/munge.socket" -n | unmunge --socket="$m/munge.socket" >/dev/null \
        || die "munge round trip failed; see $m/munged.log"
    say "munged running ($(cat "$m/munged.pid"))"
}

wait_idle() {
    local state=""
    for _ in $(seq 1 300); do
        state=$(sinfo -h -N -n localhost -o %T 2>/dev/null | head -1 || true)
        case $state in idle|mixed|allocated) return 0 ;; esac
        sleep 0.2
    done
    die "node localhost not idle after 60 s (state '${state}'); see $DIR/log"
}

cmd_start() {
    local install=0
    for arg in "$@"; do
        case $arg in
            --install) install=1 ;;
            *) die "unknown option $arg" ;;
        esac
    done
    [ "$(id -u)" = 0 ] || die "must run as root (slurmd runs the jobs)"
    [ "$install" = 1 ] && install_packages
    for c in munged mungekey slurmctld slurmd sbatch squeue sinfo scontrol runuser; do
        command -v "$c" >/dev/null || die "$c not found: install ${PACKAGES[*]} (or run: $0 start --install)"
    done
    if live_pid "$DIR/run/slurmctld.pid" slurmctld >/dev/null; then
        say "already running (state in $DIR); 'stop' first to restart"
        cmd_status
        return 0
    fi
    # a stale half-start (munged or slurmd left over): stop what our pid files name
    cmd_stop quiet
    local other
    other=$(conf_dir)
    if [ -n "$other" ] && [ "$other" != "$DIR" ]; then
        # another checkout's (or test run's) cluster: the same ports and config path
        live_pid "$other/run/slurmctld.pid" slurmctld >/dev/null \
            && die "another svar test cluster is running (state in $other): stop it first (SVAR_SLURM_DIR=$other $0 stop)"
    elif [ -e "$CONF" ] && ! grep -qxF "$MARK" "$CONF"; then
        [ "${SVAR_SLURM_FORCE:-0}" = 1 ] || die "$CONF exists and was not written by this script; set SVAR_SLURM_FORCE=1 to move it aside"
        mkdir -p "$DIR"
        mv "$CONF" "$DIR/slurm.conf.before"
        say "moved $CONF to $DIR/slurm.conf.before (restored by stop)"
    fi
    rm -rf "$DIR/state" "$DIR/spool" "$DIR/log" "$DIR/run" "$DIR/munge"
    mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log" "$DIR/run"
    chmod 0755 "$DIR"
    echo "$DIR" >"$DIR/run/dir"
    # a start that fails half way stops what it had started
    trap 'rc=$?; if [ "$rc" != 0 ]; then say "start failed: stopping what it started"; cmd_stop quiet; fi' EXIT
    start_munge
    write_conf
    # -i: ignore state files (there are none: a fresh cluster every start)
    slurmctld -i || die "slurmctld failed; see $DIR/log/slurmctld.log"
    for _ in $(seq 1 100); do
        live_pid "$DIR/run/slurmctld.pid" slurmctld >/dev/null && scontrol ping >/dev/null 2>&1 && break
        sleep 0.1
    done
    scontrol ping >/dev/null 2>&1 || die "slurmctld not answering; see $DIR/log/slurmctld.log"
    slurmd -N localhost || die "slurmd failed; see $DIR/log/slurmd.log"
    wait_idle
    trap - EXIT
    say "cluster up: partition $PARTITION, node localhost ($(node_hardware)), state in $DIR"
}

cmd_stop() {
    local quiet=${1:-}
    # jobs still running would outlive slurmd (slurmstepd is not its child): cancel them first
    if live_pid "$DIR/run/slurmctld.pid" slurmctld >/dev/null; then
        local jobs
        jobs=$(squeue -h -o %A -t PENDING,RUNNING,CONFIGURING,COMPLETING,SUSPENDED 2>/dev/null | tr '\n' ' ' || true)
        if [ -n "${jobs// /}" ]; then
            # shellcheck disable=SC2086
            scancel $jobs 2>/dev/null || true
            for _ in $(seq 1 100); do
                [ -z "$(squeue -h -o %A -t PENDING,RUNNING,CONFIGURING,COMPLETING 2>/dev/null)" ] && break
                sleep 0.1
            done
        fi
    fi
    stop_pid "$DIR/run/slurmd.pid" slurmd
    stop_pid "$DIR/run/slurmctld.pid" slurmctld
    stop_pid "$DIR/munge/munged.pid" munged
    if [ "$(conf_dir)" = "$DIR" ]; then
        rm -f "$CONF"
    fi
    if [ -e "$DIR/slurm.conf.before" ] && [ ! -e "$CONF" ]; then
        mv "$DIR/slurm.conf.before" "$CONF"
        say "restored $CONF"
    fi
    [ -n "$quiet" ] || say "stopped (logs kept in $DIR/log)"
}

cmd_status() {
    local rc=0 name pidfile pid
    for entry in "munged:$DIR/munge/munged.pid" "slurmctld:$DIR/run/slurmctld.pid" "slurmd:$DIR/run/slurmd.pid"; do
        name=${entry%%:*}
        pidfile=${entry#*:}
        if pid=$(live_pid "$pidfile" "$name"); then
            echo "$name running ($pid)"
        else
            echo "$name not running"
            rc=3
        fi
    done
    if [ "$rc" = 0 ]; then
        sinfo -N -o "%N %P %T %c %m" || rc=3
    fi
    return $rc
}

case ${1:-} in
    start) shift; cmd_start "$@" ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *) echo "usage: $0 start [--install] | stop | status" >&2; exit 2 ;;
esac
