#!/usr/bin/env bash
# Install everything hostplane and its test suite need on a fresh Debian 12 machine (as root):
# Debian packages, then a virtualenv in .venv with hostplane and its dev extras.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(python3 python3-venv python3-dev openssh-client openssh-server debootstrap tmux
              iproute2 procps ca-certificates python3-libvirt libvirt-clients qemu-utils genisoimage
              postgresql-15 vagrant vagrant-libvirt)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    echo "bootstrap: installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip 2>/dev/null || true
log=$(mktemp)
if ! .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[${HOSTPLANE_EXTRAS:-dev}]" >"$log" 2>&1; then
    cat "$log" >&2; rm -f "$log"; echo "bootstrap: pip install failed" >&2; exit 1
fi
rm -f "$log"
echo "bootstrap: ready ($(.venv/bin/hostplane --version))"
