# Sourced by the lab entrypoint (bash, set -euo pipefail) of the libvirt image.
# libvirt's networks write to /proc/sys (ip_forward, bridge settings); Docker mounts it
# read-only, and with CAP_SYS_ADMIN it can be made writable for this container.
if ! mount -o remount,rw /proc/sys 2>/dev/null; then
    echo "hostplane-lab: /proc/sys stays read-only; libvirt networks may fail" >&2
fi
install -d -m 0755 /run/libvirt /var/log/libvirt/qemu /var/log/hostplane
virtlogd -d
libvirtd -d
for _ in $(seq 100); do
    [[ -S /run/libvirt/libvirt-sock ]] && break
    sleep 0.1
done
[[ -S /run/libvirt/libvirt-sock ]] || echo "hostplane-lab: libvirtd did not start" >&2
