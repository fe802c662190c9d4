#!/usr/bin/env bash
# A one-node Slurm cluster for tests: `slurm_cluster.sh start DIR` starts munged (if none
# answers), slurmctld and slurmd with a minimal slurm.conf in DIR and prints the SLURM_CONF to
# export; `slurm_cluster.sh stop DIR` stops the daemons it started. Needs root and Debian's
# `slurm-wlm` and `munge` packages (scripts/test.sh installs them).
set -euo pipefail
cmd=${1:?start|stop}; dir=$(mkdir -p "${2:?DIR}" && cd "$2" && pwd)
conf=$dir/slurm.conf

stop() {
    for f in slurmd slurmctld munged; do
        if [ -s "$dir/$f.pid" ]; then
            pid=$(cat "$dir/$f.pid")
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            rm -f "$dir/$f.pid"
        fi
    done
}

if [ "$cmd" = stop ]; then stop; exit 0; fi
[ "$cmd" = start ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "slurm_cluster.sh: needs root (slurmd runs as root)" >&2; exit 1; }
for b in munged munge slurmctld slurmd sbatch; do
    command -v "$b" >/dev/null || { echo "slurm_cluster.sh: $b not found: apt-get install -y slurm-wlm munge" >&2; exit 1; }
done
stop
mkdir -p "$dir/state" "$dir/spool"

# munged runs as the munge user with the key the package created; reuse one that answers.
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    install -d -o munge -g munge -m 0755 /run/munge
    runuser -u munge -- munged --pid-file=/run/munge/munged.pid
    for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
    cp /run/munge/munged.pid "$dir/munged.pid"
fi
munge -n | unmunge >/dev/null || { echo "slurm_cluster.sh: munged does not answer" >&2; exit 1; }

host=$(hostname -s)
node=$(slurmd -C | head -1)            # NodeName=HOST CPUs=.. RealMemory=.. of this machine
port=$(( 20000 + $$ % 20000 ))
cat > "$conf" <<CONF
ClusterName=attnlabtest
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$port
SlurmdPort=$((port + 1))
AuthType=auth/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MpiDefault=none
$node State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$conf
slurmctld -f "$conf"
slurmd -f "$conf"
for _ in $(seq 100); do
    state=$(sinfo -h -o %T 2>/dev/null || true)
    case "$state" in idle*|mixed*|allocated*) echo "SLURM_CONF=$conf"; exit 0 ;; esac
    sleep 0.2
done
echo "slurm_cluster.sh: the node did not come up (state: ${state:-none}); logs:" >&2
tail -n 20 "$dir/slurmctld.log" "$dir/slurmd.log" >&2 || true
exit 1
