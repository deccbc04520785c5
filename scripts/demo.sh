#!/usr/bin/env bash
# The demo on a fresh Debian 12 machine (as root): install hostplane, start a lab of two
# real SSH hosts in Docker, and run real templates on both over SSH.
set -euo pipefail
cd "$(dirname "$0")/.."

HOSTPLANE_EXTRAS=lab ./scripts/bootstrap.sh
./scripts/docker-engine.sh
hp=.venv/bin/hostplane

$hp lab up -n 2 --name hostplane-demo
inv="$($hp lab status --name hostplane-demo | sed -n 's/^inventory: //p')"

echo; echo "== hostplane run host_facts (over SSH, executor uploaded once per host)"
$hp run -i "$inv" all host_facts
echo; echo "== hostplane exec: an ad hoc command on every host"
$hp exec -i "$inv" all -- uname -sr
echo; echo "The lab stays up; 'hostplane lab down --name hostplane-demo' removes it."
