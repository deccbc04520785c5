#!/usr/bin/env bash
# Build the lab's base image without any image registry:
#   debootstrap --variant=minbase bookworm DIR <the Debian mirror apt uses here>
#   tar -C DIR -c . | docker import - IMAGE
# Does nothing when IMAGE exists already. Needs root (debootstrap) and a Docker engine.
#
# Usage: base-image.sh [IMAGE]            (default hostplane-lab-base:bookworm)
# Environment (optional):
#   HOSTPLANE_DEBIAN_MIRROR   mirror URL; default: read from /etc/apt/sources.list(.d)
#   HOSTPLANE_LAB_WORKDIR     where the chroot is made (default /var/tmp)
set -euo pipefail

IMAGE="${1:-hostplane-lab-base:bookworm}"
SUITE=bookworm
# The packages every lab host needs go into the chroot itself, so that building the lab
# image needs no network; the Dockerfile only configures.
INCLUDE=openssh-server,python3,sudo,procps,iproute2
export DEBIAN_FRONTEND=noninteractive

die() {
    echo "lab-base-image: $*" >&2
    exit 1
}

# Print the URI of the Debian archive that apt uses for $SUITE (deb822 .sources files and
# one-line .list files); files disabled by renaming are skipped since their names no
# longer end in .list/.sources.
find_mirror() {
    local files=()
    [[ -f /etc/apt/sources.list ]] && files+=(/etc/apt/sources.list)
    for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [[ -f "$f" ]] && files+=("$f")
    done
    ((${#files[@]})) || return 1
    awk -v suite="$SUITE" '
        function flush() {
            if (is_deb && uris != "" && (" " suites " ") ~ (" " suite " ")) { print uris; found = 1; exit }
            is_deb = 0; uris = ""; suites = ""
        }
        FNR == 1 { flush() }
        FILENAME ~ /\.sources$/ {
            if ($0 ~ /^[[:space:]]*$/) { flush(); next }
            if ($1 == "Types:" && $0 ~ /[[:space:]]deb([[:space:]]|$)/) is_deb = 1
            if ($1 == "URIs:") uris = $2
            if ($1 == "Suites:") { $1 = ""; suites = $0 }
            next
        }
        $1 == "deb" {
            i = 2
            if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
            if ($(i + 1) == suite) { print $i; found = 1; exit }
        }
        END { if (!found) flush() }
    ' "${files[@]}"
}

cleanup() {
    [[ -n "${WORK:-}" && -d "$WORK" ]] || return 0
    # debootstrap mounts proc/sys in the target; never remove files through a live mount.
    local mounts
    mounts="$(grep -o " $WORK/[^ ]*" /proc/mounts | sort -r || true)"
    for m in $mounts; do umount -l "$m" || true; done
    rm -rf --one-file-system "$WORK"
}

main() {
    if docker image inspect "$IMAGE" >/dev/null 2>&1; then
        exit 0
    fi
    [[ $EUID -eq 0 ]] || die "debootstrap needs root (run: sudo $0 $IMAGE)"
    if ! command -v debootstrap >/dev/null 2>&1; then
        apt-get install -y -qq debootstrap >/dev/null 2>&1 \
            || { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; } \
            || die "could not install debootstrap"
    fi
    local mirror="${HOSTPLANE_DEBIAN_MIRROR:-}"
    [[ -n "$mirror" ]] || mirror="$(find_mirror || true)"
    [[ -n "$mirror" ]] || die "no apt source for $SUITE in /etc/apt/sources.list(.d); set HOSTPLANE_DEBIAN_MIRROR"

    WORK="$(mktemp -d "${HOSTPLANE_LAB_WORKDIR:-/var/tmp}/hostplane-debootstrap.XXXXXX")"
    trap cleanup EXIT
    echo "lab-base-image: debootstrap $SUITE from $mirror (log $WORK/debootstrap.log)" >&2
    if ! debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$WORK/root" "$mirror" \
        >"$WORK/debootstrap.log" 2>&1; then
        tail -n 20 "$WORK/debootstrap.log" >&2
        die "debootstrap failed"
    fi
    # Smaller image, and no host keys baked in: each container makes its own at start.
    rm -rf "$WORK"/root/var/cache/apt/archives/*.deb "$WORK"/root/var/lib/apt/lists/*
    rm -f "$WORK"/root/etc/ssh/ssh_host_*
    tar -C "$WORK/root" -c . | docker import --change 'CMD ["/bin/bash"]' - "$IMAGE" >/dev/null \
        || die "docker import failed"
    echo "lab-base-image: built $IMAGE" >&2
}

main "$@"
