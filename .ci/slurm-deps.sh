#!/usr/bin/env bash
# Debian packages the Slurm test (tests/test_slurm.py) needs: a real single-node Slurm cluster
# (slurmctld + slurmd) authenticated by munge, and the client commands (sbatch, squeue, sinfo)
# that snakemake-executor-plugin-slurm calls. Installs them where apt-get and root are at hand;
# elsewhere says what is missing (the test skips without them).
set -euo pipefail
packages=()
command -v munged >/dev/null || packages+=(munge)
command -v slurmctld >/dev/null || packages+=(slurmctld)
command -v slurmd >/dev/null || packages+=(slurmd)
command -v sbatch >/dev/null || packages+=(slurm-client)
if [ ${#packages[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq
    # policy-rc.d-less containers may try to start the daemons from the packages' init scripts;
    # scripts/slurm-local.sh starts its own, so a failed or skipped start here does not matter
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
else
    echo "slurm-deps: not root or no apt-get; install ${packages[*]} for tests/test_slurm.py" >&2
fi
