#!/usr/bin/env bash
# The demo on a fresh Debian 12 machine (as root): install hostplane, start a lab of two
# real SSH hosts in Docker that run libvirtd + QEMU, and over SSH launch a VM on each,
# show that it booted, list it and terminate it. The README's VM walkthrough, shortened.
set -euo pipefail
cd "$(dirname "$0")/.."

HOSTPLANE_EXTRAS=lab ./scripts/bootstrap.sh
./scripts/docker-engine.sh
hp=.venv/bin/hostplane
lab=hostplane-demo

started=$SECONDS
$hp lab up -n 2 --libvirt --name "$lab"
inv="$($hp lab status --name "$lab" | sed -n 's/^inventory: //p')"

step() { echo; echo "== [$((SECONDS - started))s] $*"; }

step "hostplane run host_prepare (over SSH, executor uploaded once per host): checks, folders, storage pool"
$hp run -i "$inv" all host_prepare
step "hostplane run create_network: a NAT network with DHCP for the guests"
$hp run -i "$inv" all create_network -e name=net1 -e cidr=10.213.240.0/24
step "hostplane run launch_instance: volume, domain, start, wait for the guest's ready marker"
$hp run -i "$inv" all launch_instance -e name=vm1 -e network=net1
step "the guest booted: its ready marker on each host's serial console"
$hp exec -i "$inv" all -- grep -m1 -x 'HOSTPLANE-GUEST-READY.\?' /var/log/libvirt/qemu/vm1.serial.log
step "hostplane events: every host's domains"
$hp events -i "$inv" all
step "hostplane run terminate_instance: no domain, volume or serial log left behind"
$hp run -i "$inv" all terminate_instance -e name=vm1
$hp run -i "$inv" all delete_network -e name=net1
step "hostplane exec, an ad hoc command: no domain left on any host"
$hp exec -i "$inv" all -- virsh -c qemu:///system list --all
echo; echo "The lab stays up; 'hostplane lab down --name $lab' removes it."
