#!/usr/bin/env bash
# Make sure a Docker engine answers on this machine, for the hostplane lab.
#
# Idempotent: does nothing when `docker info` already answers. Otherwise (root on Debian)
# installs docker.io and debootstrap, starts dockerd in the background with the lab's own
# address range, and waits (bounded) until it answers.
#
# Environment (all optional):
#   HOSTPLANE_DOCKER_BIP      docker0 address           (default 10.213.0.1/24)
#   HOSTPLANE_DOCKER_POOL     default address pool      (default base=10.213.0.0/16,size=24)
#   HOSTPLANE_DOCKER_LOG      dockerd log file          (default /var/log/hostplane-dockerd.log)
#   HOSTPLANE_DOCKER_TIMEOUT  seconds to wait per try   (default 60)
#   HOSTPLANE_DOCKER_STORAGE  force a storage driver    (default: overlay2, then vfs)
set -euo pipefail

BIP="${HOSTPLANE_DOCKER_BIP:-10.213.0.1/24}"
POOL="${HOSTPLANE_DOCKER_POOL:-base=10.213.0.0/16,size=24}"
LOG="${HOSTPLANE_DOCKER_LOG:-/var/log/hostplane-dockerd.log}"
TIMEOUT="${HOSTPLANE_DOCKER_TIMEOUT:-60}"
# The engine is installed by Debian's docker.io; a bare client may already sit in
# /usr/local/bin, so the daemon is always started by its full Debian path.
DOCKERD=/usr/sbin/dockerd
export DEBIAN_FRONTEND=noninteractive

die() {
    echo "docker-engine: $*" >&2
    exit 1
}

say() {
    echo "docker-engine: $*" >&2
}

engine_answers() {
    docker info >/dev/null 2>&1
}

apt_install() {
    # A fresh machine may have empty package lists: update once, only when needed.
    if ! apt-get install -y -qq "$@" >/dev/null 2>&1; then
        apt-get update -qq >/dev/null 2>&1 || die "apt-get update failed"
        apt-get install -y -qq "$@" >/dev/null || die "apt-get install $* failed"
    fi
}

ensure_packages() {
    local wanted=()
    [[ -x "$DOCKERD" ]] || wanted+=(docker.io)
    command -v debootstrap >/dev/null 2>&1 || wanted+=(debootstrap)
    if ((${#wanted[@]})); then
        command -v apt-get >/dev/null 2>&1 || die "no apt-get: install ${wanted[*]} by hand"
        say "installing ${wanted[*]}"
        apt_install "${wanted[@]}"
    fi
    [[ -x "$DOCKERD" ]] || die "$DOCKERD missing after installing docker.io"
}

# Start dockerd with one storage driver; 0 when `docker info` answers in time.
try_driver() {
    local driver="$1" pid waited=0
    say "starting dockerd (storage driver $driver, log $LOG)"
    # setsid: the daemon must outlive this script and the session that ran it.
    setsid "$DOCKERD" --bip "$BIP" --default-address-pool "$POOL" \
        --storage-driver "$driver" >>"$LOG" 2>&1 </dev/null &
    pid=$!
    while ((waited < TIMEOUT * 2)); do
        if engine_answers; then
            say "engine up (pid $pid, storage driver $driver)"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            say "dockerd exited with storage driver $driver"
            return 1
        fi
        sleep 0.5
        waited=$((waited + 1))
    done
    say "dockerd did not answer within ${TIMEOUT}s; stopping it"
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    return 1
}

main() {
    if engine_answers; then
        command -v debootstrap >/dev/null 2>&1 || [[ $EUID -ne 0 ]] || ensure_packages
        exit 0
    fi
    [[ $EUID -eq 0 ]] || die "the Docker engine does not answer and only root can start it (run: sudo $0)"
    ensure_packages
    if pgrep -x dockerd >/dev/null 2>&1; then
        die "a dockerd process runs but does not answer; see $LOG"
    fi
    mkdir -p "$(dirname "$LOG")"
    local drivers=(overlay2 vfs)
    [[ -n "${HOSTPLANE_DOCKER_STORAGE:-}" ]] && drivers=("$HOSTPLANE_DOCKER_STORAGE")
    for driver in "${drivers[@]}"; do
        try_driver "$driver" && exit 0
    done
    echo "--- last lines of $LOG ---" >&2
    tail -n 15 "$LOG" >&2 || true
    die "could not start the Docker engine (tried: ${drivers[*]})"
}

main "$@"
