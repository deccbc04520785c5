"""The Docker lab: real SSH hosts in containers, for tests, benchmarks and ``hostplane lab``.

Each host is a container with its own address in 10.213.x.0/24, its own sshd host key and a
user ``hostplane`` with passwordless sudo. ``lab_up`` writes a key pair, a known_hosts of the
hosts' real keys, an Ansible INI inventory and an ``ssh -F`` config into the lab folder.
The only module that imports ``docker``: every Docker or engine failure is a LabError.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import docker
from docker.errors import APIError, DockerException, ImageNotFound
from docker.models.containers import Container

from control_server.errors import LabError

ASSETS = Path(__file__).with_name("lab_assets")
BASE_IMAGE = "hostplane-lab-base:bookworm"
HOST_IMAGE = "hostplane-lab:bookworm"
LIBVIRT_IMAGE = "hostplane-lab-libvirt:bookworm"
USER = "hostplane"
LABEL = "org.hostplane.lab"
HOST_LABEL = "org.hostplane.lab.host"
DIGEST_LABEL = "org.hostplane.lab.assets"
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


@dataclass
class LabHost:
    name: str
    address: str
    container_id: str


@dataclass
class Lab:
    name: str
    folder: Path
    hosts: list[LabHost]
    inventory: Path
    known_hosts: Path
    key: Path
    ssh_config: Path
    libvirt: bool = False

    def host(self, name: str) -> LabHost:
        for host in self.hosts:
            if host.name == name:
                return host
        raise LabError(f"lab {self.name}: no host {name!r}")


def default_folder(name: str) -> Path:
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "hostplane" / "lab" / name


def _lab_paths(name: str, folder: Path, hosts: list[LabHost], libvirt: bool) -> Lab:
    return Lab(name=name, folder=folder, hosts=hosts, inventory=folder / "hosts.ini",
               known_hosts=folder / "known_hosts", key=folder / "id_ed25519",
               ssh_config=folder / "ssh_config", libvirt=libvirt)


@contextmanager
def _docker_errors(what: str) -> Iterator[None]:
    """Turn Docker's exceptions into a LabError that says what we were doing."""
    try:
        yield
    except DockerException as exc:
        raise LabError(f"{what}: {exc}") from exc


def _run_script(script: str, *args: str, what: str) -> None:
    proc = subprocess.run(["bash", str(ASSETS / script), *args], capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise LabError(f"{what} failed (exit {proc.returncode}):\n{tail}")


def _ping() -> docker.DockerClient:
    client = docker.from_env(max_pool_size=32, timeout=300)
    client.ping()
    return client


def _client(start_engine: bool = True) -> docker.DockerClient:
    """A client for a Docker engine that answers, starting the engine if needed and allowed."""
    try:
        return _ping()
    except DockerException as exc:
        if not start_engine:
            raise LabError(f"the Docker engine does not answer: {exc}") from exc
    _run_script("docker-engine.sh", what="starting the Docker engine")
    with _docker_errors("the Docker engine still does not answer"):
        return _ping()


def _assets_digest(*names: str) -> str:
    digest = hashlib.sha256()
    for name in names:
        digest.update(name.encode() + b"\0" + (ASSETS / name).read_bytes())
    return digest.hexdigest()[:16]


def _build(client: docker.DockerClient, tag: str, dockerfile: str, digest: str,
           buildargs: dict[str, str]) -> None:
    """Build ``tag`` unless an image built from the same assets exists already."""
    old = None
    try:
        old = client.images.get(tag)
        if old.labels.get(DIGEST_LABEL) == digest:
            return
    except ImageNotFound:
        pass
    with _docker_errors(f"building {tag}"):
        # Host networking: a build that has to apt-get reaches the mirror exactly as the
        # host's own apt does, whatever the FORWARD rules of the bridge say.
        new, _ = client.images.build(path=str(ASSETS), dockerfile=dockerfile, tag=tag,
                                     rm=True, forcerm=True, buildargs=buildargs,
                                     network_mode="host", labels={DIGEST_LABEL: digest})
    if old is not None and old.id != new.id:
        with suppress(APIError):  # still used by a container: it goes with that one
            client.images.remove(old.id)


def ensure_images(client: docker.DockerClient, libvirt: bool = False) -> str:
    """Build the lab images that are missing or stale; return the image to run."""
    try:
        client.images.get(BASE_IMAGE)
    except ImageNotFound:
        _run_script("base-image.sh", BASE_IMAGE, what=f"building {BASE_IMAGE}")
    host_files = ("Dockerfile", "entrypoint.sh", "sshd_config")
    _build(client, HOST_IMAGE, "Dockerfile", _assets_digest(*host_files),
           {"BASE": BASE_IMAGE})
    if not libvirt:
        return HOST_IMAGE
    libvirt_files = (*host_files, "Dockerfile.libvirt", "libvirt-entrypoint.sh",
                     "build-guest.sh", "qemu.conf")
    _build(client, LIBVIRT_IMAGE, "Dockerfile.libvirt", _assets_digest(*libvirt_files),
           {"BASE": HOST_IMAGE})
    return LIBVIRT_IMAGE


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


def _ensure_key(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    folder.chmod(0o700)
    key = folder / "id_ed25519"
    if not key.exists() or not key.with_suffix(".pub").exists():
        if shutil.which("ssh-keygen") is None:
            raise LabError("ssh-keygen not found: install openssh-client")
        key.unlink(missing_ok=True)
        key.with_suffix(".pub").unlink(missing_ok=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "hostplane-lab",
                        "-f", str(key)], check=True, capture_output=True)
    key.chmod(0o600)
    return key


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


def _bring_up(client: docker.DockerClient, spec: _HostSpec,
              existing: Container | None) -> tuple[LabHost, str]:
    """Start one host (creating it if needed); return it with its real host key."""
    with _docker_errors(f"starting {spec.name}"):
        container = existing or _create_host(client, spec)
        if container.status != "running":
            container.start()
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


def _write_files(lab: Lab, host_keys: list[str]) -> None:
    """known_hosts (real keys), an Ansible INI inventory and an ``ssh -F`` config."""
    lab.known_hosts.write_text("".join(
        f"{h.name},{h.address} {k}\n" for h, k in zip(lab.hosts, host_keys, strict=True)))
    common = (f"-o UserKnownHostsFile={lab.known_hosts} -o StrictHostKeyChecking=yes")
    lines = [f"# hostplane lab {lab.name}: rewritten by every lab up", "[lab]"]
    lines += [f"{h.name} ansible_host={h.address} ansible_user={USER} "
              f"ansible_ssh_private_key_file={lab.key}" for h in lab.hosts]
    lines += ["", "[lab:vars]", f"ansible_ssh_common_args='{common}'", ""]
    lab.inventory.write_text("\n".join(lines))
    lab.ssh_config.write_text(f"# hostplane lab {lab.name}: ssh -F {lab.ssh_config} HOST\n" + "".join(
        f"\nHost {h.name}\n    HostName {h.address}\n    User {USER}\n"
        f'    IdentityFile "{lab.key}"\n    IdentitiesOnly yes\n'
        f'    UserKnownHostsFile "{lab.known_hosts}"\n    GlobalKnownHostsFile /dev/null\n'
        "    StrictHostKeyChecking yes\n    LogLevel ERROR\n" for h in lab.hosts))


def _check_args(n: int, name: str) -> None:
    if not 1 <= n <= MAX_HOSTS:
        raise LabError(f"a lab has 1 to {MAX_HOSTS} hosts, not {n}")
    if not name or not all(ch.isalnum() or ch in "-_." for ch in name) or not name[0].isalnum():
        raise LabError(f"bad lab name {name!r}: use letters, digits, '-', '_' and '.'")


def lab_up(n: int = 3, name: str = "hostplane-lab", folder: Path | None = None,
           libvirt: bool = False) -> Lab:
    """Bring lab ``name`` up with ``n`` hosts (reusing it when it is already so) and return it."""
    _check_args(n, name)
    folder = folder or default_folder(name)
    client = _client()
    image = ensure_images(client, libvirt)
    key = _ensure_key(folder)
    pubkey = key.with_suffix(".pub").read_text().strip()
    with _docker_errors(f"lab {name}"):
        existing = _lab_containers(client, name)
        if existing and not _reusable(client, existing, n, image, pubkey):
            _remove_containers(existing)
            existing = []
        subnet = ipaddress.ip_network(_ensure_network(client, name))
        specs = [_HostSpec(name, i, str(subnet.network_address + FIRST_ADDRESS + i - 1), image,
                           pubkey, libvirt) for i in range(1, n + 1)]
        reuse = dict(zip(range(1, n + 1), existing, strict=False))
        with ThreadPoolExecutor(max_workers=min(n, 8)) as pool:
            up = list(pool.map(lambda s: _bring_up(client, s, reuse.get(s.index)), specs))
    lab = _lab_paths(name, folder, [h for h, _ in up], libvirt)
    _write_files(lab, [k for _, k in up])
    return lab


def lab_status(name: str = "hostplane-lab", folder: Path | None = None) -> Lab | None:
    """The lab as Docker has it now, or None when it does not exist."""
    client = _client(start_engine=False)
    with _docker_errors(f"lab {name}"):
        containers = _lab_containers(client, name)
        if not containers and not [n for n in client.networks.list(names=[name])
                                   if n.name == name]:
            return None
        hosts = [LabHost(str(c.labels[HOST_LABEL]), str(c.labels[f"{LABEL}.address"]),
                         c.id or "") for c in containers]
    libvirt = any(c.labels.get(f"{LABEL}.libvirt") == "1" for c in containers)
    return _lab_paths(name, folder or default_folder(name), hosts, libvirt)


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
    client = _client(start_engine=False)
    with _docker_errors(f"removing lab {name}"):
        _remove_containers(_lab_containers(client, name))
        _remove_network(client, name)
    folder = folder or default_folder(name)
    for file in ("hosts.ini", "known_hosts", "ssh_config", "id_ed25519", "id_ed25519.pub"):
        (folder / file).unlink(missing_ok=True)
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


def _container(lab: Lab, host: LabHost | str) -> tuple[LabHost, Container]:
    entry = lab.host(host) if isinstance(host, str) else host
    client = _client(start_engine=False)
    with _docker_errors(f"{entry.name}"):
        return entry, client.containers.get(entry.container_id)


def stop_host(lab: Lab, host: LabHost | str) -> None:
    """Stop one host's container: it becomes unreachable (connection refused/timeout)."""
    entry, container = _container(lab, host)
    with _docker_errors(f"stopping {entry.name}"):
        container.stop(timeout=5)


def start_host(lab: Lab, host: LabHost | str) -> None:
    """Start a stopped host again (same address, same host key) and wait for its sshd."""
    entry, container = _container(lab, host)
    with _docker_errors(f"starting {entry.name}"):
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
    with _docker_errors(f"replacing the host key of {entry.name}"):
        code, out = container.exec_run(["sh", "-c", script])
        if code != 0:
            raise LabError(f"{entry.name}: replacing the host key failed: {out.decode()}")
        time.sleep(0.2)  # the listener re-executes itself on SIGHUP
        _wait_ssh(entry.address)
        return _host_key(container)


def refresh_known_hosts(lab: Lab) -> None:
    """Collect every host's current key into the lab's known_hosts again."""
    client = _client(start_engine=False)
    with _docker_errors(f"lab {lab.name}"):
        keys = [_host_key(client.containers.get(h.container_id)) for h in lab.hosts]
    _write_files(lab, keys)
