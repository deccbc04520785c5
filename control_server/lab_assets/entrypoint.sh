#!/bin/bash
# Start a hostplane lab host: its own host key, the lab's authorized key, then sshd.
set -euo pipefail

# Made at the first start only: every container has its own key, and it survives a
# stop/start so the lab's known_hosts stays valid.
key=/etc/ssh/ssh_host_ed25519_key
if [[ ! -s $key ]]; then
    ssh-keygen -q -t ed25519 -N '' -C "$(hostname)" -f "$key"
fi

if [[ -n "${HOSTPLANE_AUTHORIZED_KEY:-}" ]]; then
    ssh_dir=/home/hostplane/.ssh
    install -d -m 0700 -o hostplane -g hostplane "$ssh_dir"
    printf '%s\n' "$HOSTPLANE_AUTHORIZED_KEY" >"$ssh_dir/authorized_keys"
    chown hostplane:hostplane "$ssh_dir/authorized_keys"
    chmod 0600 "$ssh_dir/authorized_keys"
fi
unset HOSTPLANE_AUTHORIZED_KEY

# Hooks of derived images (the libvirt image starts its daemons here).
for hook in /usr/local/lib/hostplane/entrypoint.d/*.sh; do
    [[ -e $hook ]] || continue
    # shellcheck source=/dev/null
    . "$hook"
done

install -d -m 0755 /run/sshd
exec /usr/sbin/sshd -D -e
