#!/usr/bin/env bash
# Start a single-node SLURM cluster on localhost with one fake typed GPU (no accounting).
# The node's CPUs and memory are this machine's. Stop it with stop-cluster.sh.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
"$here/stop-cluster.sh" 2>/dev/null || true
mkdir -p /run/munge /run/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /etc/slurm
chown munge:munge /run/munge && chmod 755 /run/munge
cpus=$(nproc)
memory=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 9 / 10 ))
sed -e "s/@CPUS@/$cpus/" -e "s/@MEMORY@/$memory/" "$here/slurm.conf.in" > /etc/slurm/slurm.conf
install -m 644 "$here/gres.conf" /etc/slurm/gres.conf
if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
    chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
fi
runuser -u munge -- /usr/sbin/munged
munge -n | unmunge >/dev/null
/usr/sbin/slurmctld -c
/usr/sbin/slurmd -N localhost
for _ in $(seq 1 60); do
    sinfo -h -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)$' && break
    sleep 0.5
done
sinfo
sinfo -h -o '%T' | grep -qE '^(idle|mixed|allocated)$' || { scontrol show node; exit 1; }
