#!/usr/bin/env bash
# Build the lab's tiny guest: a stock Debian kernel (from the linux-image-amd64 package,
# not installed: only unpacked) and a busybox initramfs. Runs inside the libvirt image
# build (needs apt lists, busybox-static, kmod, cpio).
#
# The guest's /init mounts proc/sys/dev, loads virtio networking (and the ACPI button +
# evdev so that busybox acpid sees the power button), prints HOSTPLANE-GUEST-READY on
# the console (console=ttyS0), asks for a DHCP lease on eth0 and stays up; an ACPI power
# button press (virsh shutdown) powers it off cleanly. The domain needs
# <features><acpi/></features> for that: without ACPI the guest only halts.
# With hostplane.seed=cdrom on its command line (launch_instance with a cloud-init seed),
# it first mounts the cdrom labelled cidata and prints the seed's instance-id, hostname
# and every user-data line holding HOSTPLANE-SEED- ("hostplane-guest: seed ..." lines).
#
# Usage: build-guest.sh [OUT]   (default /var/lib/hostplane/guest)
# Writes OUT/vmlinuz (stock), OUT/vmlinux (the same kernel decompressed, for a faster
# PVH boot), OUT/initramfs.cpio.gz, OUT/kernel-version.
set -euo pipefail

OUT="${1:-/var/lib/hostplane/guest}"
# modprobe resolves their dependencies (virtio, virtio_ring, failover, net_failover, ...).
MODULES=(virtio_pci virtio_net button evdev)
# Loaded only for a seed: the IDE cdrom and ISO 9660 (no cost to a guest without one).
SEED_MODULES=(ata_piix sr_mod isofs)

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

pkg="$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')"
[[ -n "$pkg" ]] || { echo "build-guest: no kernel package behind linux-image-amd64" >&2; exit 1; }
(cd "$work" && apt-get download -q "$pkg" >/dev/null 2>&1)
dpkg-deb -x "$work"/"$pkg"_*.deb "$work/kernel"
kver="$(basename "$(ls -d "$work"/kernel/lib/modules/*)")"
depmod -b "$work/kernel" "$kver"

root="$work/initramfs"
mkdir -p "$root"/{bin,dev,proc,sys,run,tmp,var/log,etc/acpi/PWRF,lib/modules}
cp /bin/busybox "$root/bin/busybox"

# Modules in dependency order, each once (modprobe prints "insmod PATH" lines); a seed
# module already in load-order is not loaded twice.
load_order() {
    local list="$1"; shift
    : >"$root/lib/modules/$list"
    for module in "$@"; do
        modprobe -d "$work/kernel" -S "$kver" --show-depends "$module"
    done | awk '$1 == "insmod" && !seen[$2]++ {print $2}' | while read -r ko; do
            grep -qx "$(basename "$ko")" "$root/lib/modules/load-order" 2>/dev/null && continue
            cp "$ko" "$root/lib/modules/"
            basename "$ko" >>"$root/lib/modules/$list"
        done
}
load_order load-order "${MODULES[@]}"
load_order seed-load-order "${SEED_MODULES[@]}"

cat >"$root/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
while read -r ko; do
    insmod "/lib/modules/$ko" || echo "hostplane-guest: insmod $ko failed"
done </lib/modules/load-order
# busybox acpid maps the power button (PWRF) to /etc/acpi/PWRF/00000080.
acpid -c /etc/acpi -l /var/log/acpid.log
case " $(cat /proc/cmdline) " in *" hostplane.seed=cdrom "*) /bin/read-seed ;; esac
echo HOSTPLANE-GUEST-READY
# Ask for a DHCP lease on the first NIC, if any (lets tests see a lease in libvirt's
# dnsmasq). The address is set; no default route: the guest talks to nobody on its own.
if [ -e /sys/class/net/eth0 ]; then
    ip link set eth0 up
    udhcpc -b -q -i eth0 -s /etc/udhcpc.script -t 10 -T 2 >/dev/null 2>&1
fi
# PID 1 must never exit (that would panic the kernel).
while :; do sleep 3600; done
INIT
cat >"$root/etc/acpi/PWRF/00000080" <<'POWER'
#!/bin/sh
echo "hostplane-guest: power button, powering off"
sync
poweroff -f
POWER
cat >"$root/etc/udhcpc.script" <<'DHCP'
#!/bin/sh
case "$1" in
bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    echo "hostplane-guest: $interface $ip" >/dev/console
    ;;
esac
DHCP
cat >"$root/bin/read-seed" <<'SEED'
#!/bin/sh
while read -r ko; do
    insmod "/lib/modules/$ko" || echo "hostplane-guest: insmod $ko failed"
done </lib/modules/seed-load-order
# The cdrom shows up once the IDE bus is probed: give it a few seconds.
for _ in 1 2 3 4 5 6 7 8 9 10; do
    dev="$(findfs LABEL=cidata 2>/dev/null)" && break
    sleep 1
done
if [ -z "$dev" ]; then
    echo "hostplane-guest: seed: no cdrom labelled cidata"
    exit 0
fi
mkdir -p /seed
mount -t iso9660 -o ro "$dev" /seed || { echo "hostplane-guest: seed: cannot mount $dev"; exit 0; }
# meta-data values are double-quoted (as hostplane writes them)
value() { sed -n "s/^$1: *//p" /seed/meta-data | tr -d '"'; }
echo "hostplane-guest: seed instance-id $(value instance-id)"
echo "hostplane-guest: seed local-hostname $(value local-hostname)"
grep 'HOSTPLANE-SEED-' /seed/user-data | head -n 5 | sed 's/^/hostplane-guest: seed user-data: /'
umount /seed
SEED
chmod 0755 "$root/init" "$root/etc/acpi/PWRF/00000080" "$root/etc/udhcpc.script" "$root/bin/read-seed"

mkdir -p "$OUT"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -9) >"$OUT/initramfs.cpio.gz"
cp "$work"/kernel/boot/vmlinuz-"$kver" "$OUT/vmlinuz"
# The same kernel, decompressed: QEMU boots an ELF vmlinux through its PVH entry point,
# which skips the in-guest xz decompression, about half of the CPU of a TCG boot.
python3 - "$OUT/vmlinuz" "$OUT/vmlinux" <<'PY'
import lzma
import sys

data = open(sys.argv[1], "rb").read()
start = data.find(b"\xfd7zXZ\x00")
if start < 0:
    sys.exit("build-guest: vmlinuz is not xz-compressed; no vmlinux made")
elf = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data[start:])
if not elf.startswith(b"\x7fELF"):
    sys.exit("build-guest: the xz payload of vmlinuz is not an ELF kernel")
open(sys.argv[2], "wb").write(elf)
PY
echo "$kver" >"$OUT/kernel-version"
chmod 0644 "$OUT"/*
echo "build-guest: kernel $kver, modules: $(tr '\n' ' ' <"$root/lib/modules/load-order")" >&2
