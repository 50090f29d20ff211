#!/usr/bin/env bash
# Install SLURM and munge from Debian/Ubuntu and bring up the single-node test cluster:
# node "localhost" with this machine's CPUs and memory (detected at start) and one fake
# typed GPU, partition "debug", no accounting. Run as root; idempotent:
#   - packages already installed: no apt-get at all;
#   - cluster already up (slurmctld answers, node idle/mixed/allocated): left running, so
#     jobs of another run are not killed. Otherwise start-cluster.sh (re)starts it.
# Stop it with .ci/slurm/stop-cluster.sh (by pid file). INSTALL_ONLY=1: packages only.
# Takes ~10-20 s on a fresh machine (apt-get update + install), ~1 s to start the daemons.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
[ "$(id -u)" = 0 ] || { echo "install.sh: run as root" >&2; exit 1; }

packages=(slurmctld slurmd slurm-client munge)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' \
        || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "install.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # daemons are started by hand below: keep the packages' scripts from starting them
    # (no systemd here; where there is one, a packaged slurmd would race ours)
    created_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
        created_policy=1
    fi
    trap '[ "$created_policy" = 0 ] || rm -f /usr/sbin/policy-rc.d' EXIT
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "install.sh: $(slurmctld -V), $(munged -V 2>&1 | head -1)"
[ "${INSTALL_ONLY:-0}" = 1 ] && exit 0

cluster_up() {
    [ -s /run/slurm/slurmctld.pid ] && kill -0 "$(cat /run/slurm/slurmctld.pid)" 2>/dev/null &&
        [ -s /run/slurm/slurmd.pid ] && kill -0 "$(cat /run/slurm/slurmd.pid)" 2>/dev/null &&
        scontrol ping 2>/dev/null | grep -q 'is UP' &&
        sinfo -h -n localhost -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)$'
}
if cluster_up; then
    echo "install.sh: the cluster is already up, left running"
    sinfo
    exit 0
fi
# writes /etc/slurm/slurm.conf (CPUs = nproc, RealMemory = 90% of MemTotal) and gres.conf,
# starts munged, slurmctld -c and slurmd -N localhost, and waits until the node is idle
bash "$here/start-cluster.sh"
