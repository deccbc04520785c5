"""The Docker lab: real SSH hosts in containers, for tests, benchmarks and ``hostplane lab``.

Each host is a container with its own address in 10.213.x.0/24, its own sshd host key and a
user ``hostplane`` with passwordless sudo. ``lab_up`` writes a key pair, a known_hosts of the
hosts' real keys, an Ansible INI inventory and an ``ssh -F`` config into the lab folder.
This module runs the containers; ``lab_images`` builds their images and ``lab_files``
writes the client files. Only the lab modules import ``docker``: every Docker or engine
failure is a LabError.
"""

from __future__ import annotations

import hashlib
import ipaddress
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import docker
from docker.errors import APIError
from docker.models.containers import Container

from control_server.errors import LabError
from control_server.lab_files import (
    USER,
    Lab,
    LabHost,
    default_folder,
    ensure_key,
    lab_paths,
    remove_files,
    write_files,
)
from control_server.lab_images import (
    BASE_IMAGE,
    HOST_IMAGE,
    LIBVIRT_IMAGE,
    Progress,
    docker_errors,
    engine,
    ensure_images,
)

__all__ = ["BASE_IMAGE", "HOST_IMAGE", "LIBVIRT_IMAGE", "USER", "Lab", "LabHost", "Progress",
           "default_folder", "ensure_images", "lab_down", "lab_status", "lab_up",
           "refresh_known_hosts", "replace_host_key", "start_host", "stop_host"]

LABEL = "org.hostplane.lab"
HOST_LABEL = "org.hostplane.lab.host"
NET_PREFIX = "10.213"
FIRST_ADDRESS = 11
MAX_HOSTS = 200
SSH_TIMEOUT = 60.0
# Minimal set, found by dropping one at a time: sshd (privsep chroot, setuid/setgid),
# sudo (audit records), root managing files and processes of other users. Docker sets
# ip_unprivileged_port_start=0 in the container, so binding port 22 needs no capability.
HOST_CAPS = ["AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "KILL", "SETGID", "SETUID",
             "SYS_CHROOT"]
# libvirtd + QEMU + libvirt networks, also minimal: remounting /proc/sys read-write
# (SYS_ADMIN), bridges, taps and firewall rules (NET_ADMIN), libvirt clearing its children's
# bounding set (SETPCAP), and dnsmasq, which refuses to start without NET_RAW and
# NET_BIND_SERVICE. Docker's default seccomp profile is enough.
LIBVIRT_CAPS = [*HOST_CAPS, "SYS_ADMIN", "NET_ADMIN", "SETPCAP", "NET_RAW", "NET_BIND_SERVICE"]
# A no-op where AppArmor is off (as here); elsewhere docker-default forbids the remount.
LIBVIRT_SECURITY = ["apparmor=unconfined"]



def _subnet_for(client: docker.DockerClient, name: str) -> str:
    """A free 10.213.x.0/24 for lab ``name``: the same one every time when it is free."""
    taken: set[str] = set()
    for net in client.networks.list():
        for cfg in (net.attrs.get("IPAM") or {}).get("Config") or []:
            if "Subnet" in cfg:
                taken.add(cfg["Subnet"])
    # x = 0 is docker0's (--bip 10.213.0.1/24); start at a name-derived x so that a lab
    # keeps its addresses across down/up and two labs rarely race for one subnet.
    # x >= 232 is left to the VM networks that libvirt makes inside lab hosts.
    start = int(hashlib.sha256(name.encode()).hexdigest(), 16) % 231
    for i in range(231):
        subnet = f"{NET_PREFIX}.{(start + i) % 231 + 1}.0/24"
        if subnet not in taken:
            return subnet
    raise LabError(f"no free /24 left in {NET_PREFIX}.0.0/16 for lab {name}")


def _ensure_network(client: docker.DockerClient, name: str) -> str:
    for net in client.networks.list(names=[name]):
        if net.name == name:
            if (net.attrs.get("Labels") or {}).get(LABEL) != name:
                raise LabError(f"a Docker network {name!r} exists and is not this lab's")
            return str(net.attrs["IPAM"]["Config"][0]["Subnet"])
    tries = 3  # another lab may take the same subnet meanwhile
    while True:
        subnet = _subnet_for(client, name)
        pool = docker.types.IPAMPool(subnet=subnet, gateway=subnet.replace(".0/24", ".1"))
        try:
            client.networks.create(name, driver="bridge", labels={LABEL: name},
                                   ipam=docker.types.IPAMConfig(pool_configs=[pool]))
            return subnet
        except APIError as exc:
            tries -= 1
            if "overlaps" not in str(exc) or not tries:
                raise


def _wait_ssh(address: str, timeout: float = SSH_TIMEOUT) -> None:
    """Wait until sshd at ``address`` sends its banner."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((address, 22), timeout=2) as sock:
                sock.settimeout(5)
                if sock.recv(64).startswith(b"SSH-"):
                    return
                last = "no SSH banner"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.05)
    raise LabError(f"sshd at {address} did not answer within {timeout:.0f}s ({last})")


def _host_key(container: Container) -> str:
    code, out = container.exec_run(["cat", "/etc/ssh/ssh_host_ed25519_key.pub"])
    if code != 0:
        raise LabError(f"{container.name}: cannot read its host key: {out.decode(errors='replace')}")
    kind, blob = out.decode().split()[:2]
    return f"{kind} {blob}"


@dataclass
class _HostSpec:
    lab: str
    index: int
    address: str
    image: str
    pubkey: str
    libvirt: bool
    name: str = field(init=False)

    def __post_init__(self) -> None:
        self.name = f"{self.lab}-{self.index}"


def _create_host(client: docker.DockerClient, spec: _HostSpec) -> Container:
    api = client.api
    host_config = api.create_host_config(
        init=True,  # a real PID 1 reaps what executors leave behind
        cap_drop=["ALL"],
        cap_add=LIBVIRT_CAPS if spec.libvirt else HOST_CAPS,
        security_opt=LIBVIRT_SECURITY if spec.libvirt else None,
        devices=["/dev/net/tun:/dev/net/tun:rwm"] if spec.libvirt else None,
    )
    networking = api.create_networking_config(
        {spec.lab: api.create_endpoint_config(ipv4_address=spec.address)})
    created = api.create_container(
        spec.image, name=spec.name, hostname=spec.name, detach=True,
        environment={"HOSTPLANE_AUTHORIZED_KEY": spec.pubkey},
        labels={LABEL: spec.lab, HOST_LABEL: spec.name, f"{LABEL}.index": str(spec.index),
                f"{LABEL}.address": spec.address, f"{LABEL}.libvirt": str(int(spec.libvirt))},
        host_config=host_config, networking_config=networking)
    api.start(created["Id"])
    return client.containers.get(created["Id"])


def _start(client: docker.DockerClient, spec: _HostSpec, existing: Container | None) -> Container:
    """Start one host's container, creating it if needed."""
    with docker_errors(f"starting {spec.name}"):
        container = existing or _create_host(client, spec)
        if container.status != "running":
            container.start()
        return container


def _ready(spec: _HostSpec, container: Container) -> tuple[LabHost, str]:
    """Wait for one host's sshd; return the host with its real host key."""
    with docker_errors(f"starting {spec.name}"):
        _wait_ssh(spec.address)
        key = _host_key(container)
    return LabHost(spec.name, spec.address, container.id or ""), key


def _lab_containers(client: docker.DockerClient, name: str) -> list[Container]:
    found = client.containers.list(all=True, filters={"label": f"{LABEL}={name}"})
    return sorted(found, key=lambda c: int(c.labels.get(f"{LABEL}.index", "0")))


def _reusable(client: docker.DockerClient, containers: list[Container], n: int, image: str,
              pubkey: str) -> bool:
    """Whether the running lab already is the one asked for (same size, image and key)."""
    image_id = client.images.get(image).id
    want_env = f"HOSTPLANE_AUTHORIZED_KEY={pubkey}"
    return len(containers) == n and all(
        c.attrs["Image"] == image_id and want_env in (c.attrs["Config"]["Env"] or [])
        for c in containers)


def _check_args(n: int, name: str) -> None:
    if not 1 <= n <= MAX_HOSTS:
        raise LabError(f"a lab has 1 to {MAX_HOSTS} hosts, not {n}")
    if not name or not all(ch.isalnum() or ch in "-_." for ch in name) or not name[0].isalnum():
        raise LabError(f"bad lab name {name!r}: use letters, digits, '-', '_' and '.'")


def lab_up(n: int = 3, name: str = "hostplane-lab", folder: Path | None = None,
           libvirt: bool = False, progress: Progress | None = None) -> Lab:
    """Bring lab ``name`` up with ``n`` hosts (reusing it when it is already so) and return it.

    ``progress`` (``lab_images.stderr_progress()`` for the CLI) hears of every phase.
    """
    _check_args(n, name)
    progress = progress or Progress()
    folder = folder or default_folder(name)
    client = engine()
    image = ensure_images(client, libvirt, progress)
    key = ensure_key(folder)
    pubkey = key.with_suffix(".pub").read_text().strip()
    with docker_errors(f"lab {name}"):
        existing = _lab_containers(client, name)
        if existing and not _reusable(client, existing, n, image, pubkey):
            _remove_containers(existing)
            existing = []
        subnet = ipaddress.ip_network(_ensure_network(client, name))
        specs = [_HostSpec(name, i, str(subnet.network_address + FIRST_ADDRESS + i - 1), image,
                           pubkey, libvirt) for i in range(1, n + 1)]
        reuse = dict(zip(range(1, n + 1), existing, strict=False))
        progress(f"containers starting: {n} on {subnet}"
                 + (f" ({len(reuse)} already there)" if reuse else ""))
        with ThreadPoolExecutor(max_workers=min(n, 8)) as pool:
            started = list(pool.map(lambda s: _start(client, s, reuse.get(s.index)), specs))
            up = list(pool.map(_ready, specs, started))
    progress(f"sshd ready on {n} host{'s' if n > 1 else ''}"
             + (" (libvirtd started first)" if libvirt else ""))
    lab = lab_paths(name, folder, [h for h, _ in up], libvirt)
    write_files(lab, [k for _, k in up])
    return lab


def lab_status(name: str = "hostplane-lab", folder: Path | None = None) -> Lab | None:
    """The lab as Docker has it now, or None when it does not exist."""
    client = engine(start_engine=False)
    with docker_errors(f"lab {name}"):
        containers = _lab_containers(client, name)
        if not containers and not [n for n in client.networks.list(names=[name])
                                   if n.name == name]:
            return None
        hosts = [LabHost(str(c.labels[HOST_LABEL]), str(c.labels[f"{LABEL}.address"]),
                         c.id or "") for c in containers]
    libvirt = any(c.labels.get(f"{LABEL}.libvirt") == "1" for c in containers)
    return lab_paths(name, folder or default_folder(name), hosts, libvirt)


def _remove_container(container: Container) -> None:
    # Stop before removing: force-removing many running containers at once has left
    # stale endpoints behind in Docker 20.10 ("network ... has active endpoints").
    if container.status == "running":
        container.stop(timeout=3)
    container.remove(force=True)


def _remove_containers(containers: list[Container]) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(_remove_container, containers))


def _remove_network(client: docker.DockerClient, name: str) -> None:
    for net in client.networks.list(names=[name]):
        if net.name != name or (net.attrs.get("Labels") or {}).get(LABEL) != name:
            continue
        for attempt in range(20):
            try:
                net.remove()
                return
            except APIError as exc:
                if "active endpoints" not in str(exc) or attempt == 19:
                    raise LabError(f"cannot remove network {name}: {exc.explanation}; "
                                   "if no container uses it, restarting dockerd clears "
                                   "stale endpoints") from exc
                time.sleep(0.5)


def lab_down(name: str = "hostplane-lab", folder: Path | None = None) -> None:
    """Remove the lab's containers, network and generated files (idempotent)."""
    client = engine(start_engine=False)
    with docker_errors(f"removing lab {name}"):
        _remove_containers(_lab_containers(client, name))
        _remove_network(client, name)
    remove_files(folder or default_folder(name))


def _container(lab: Lab, host: LabHost | str) -> tuple[LabHost, Container]:
    entry = lab.host(host) if isinstance(host, str) else host
    client = engine(start_engine=False)
    with docker_errors(f"{entry.name}"):
        return entry, client.containers.get(entry.container_id)


def stop_host(lab: Lab, host: LabHost | str) -> None:
    """Stop one host's container: it becomes unreachable (connection refused/timeout)."""
    entry, container = _container(lab, host)
    with docker_errors(f"stopping {entry.name}"):
        container.stop(timeout=5)


def start_host(lab: Lab, host: LabHost | str) -> None:
    """Start a stopped host again (same address, same host key) and wait for its sshd."""
    entry, container = _container(lab, host)
    with docker_errors(f"starting {entry.name}"):
        container.start()
    _wait_ssh(entry.address)


def replace_host_key(lab: Lab, host: LabHost | str) -> str:
    """Give a host a new host key; known_hosts keeps the old one (a mismatch, on purpose).

    Returns the new key (``ssh-ed25519 AAAA...``); ``refresh_known_hosts`` accepts it.
    """
    entry, container = _container(lab, host)
    script = ("set -e; k=/etc/ssh/ssh_host_ed25519_key; rm -f $k $k.pub; "
              "ssh-keygen -q -t ed25519 -N '' -f $k; "
              "kill -HUP $(pgrep -o -x sshd)")  # the listener re-reads its keys
    with docker_errors(f"replacing the host key of {entry.name}"):
        code, out = container.exec_run(["sh", "-c", script])
        if code != 0:
            raise LabError(f"{entry.name}: replacing the host key failed: {out.decode()}")
        time.sleep(0.2)  # the listener re-executes itself on SIGHUP
        _wait_ssh(entry.address)
        return _host_key(container)


def refresh_known_hosts(lab: Lab) -> None:
    """Collect every host's current key into the lab's known_hosts again."""
    client = engine(start_engine=False)
    with docker_errors(f"lab {lab.name}"):
        keys = [_host_key(client.containers.get(h.container_id)) for h in lab.hosts]
    write_files(lab, keys)
