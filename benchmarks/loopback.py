"""A fleet of N hosts on loopback for ``fanout.py --loopback``: no Docker, no VMs.

Real OpenSSH servers (``/usr/sbin/sshd``) on this machine, each listening on up to 16
addresses (OpenSSH's MAX_LISTEN_SOCKS), as many as N needs, so that every host has its own
127.<net>.x.y address. All of it lives in one folder: one sshd_config per server, one host
key (every server), one client key, and per fleet size a known_hosts with one line per
host and an ssh_config with one ``Host`` block per host, as an operator's files would be.
sshd sets ``HOME`` to a folder of the fleet's (``SetEnv HOME=``) so the executor's cache,
its journals and anything pyinfra or ansible leave behind stay there, never in ~/.cache.

Users: sshd runs as whoever runs the benchmark and accepts that user only (the client
key). Root is fine (``UsePAM no``, ``PermitRootLogin prohibit-password``); a user who is
not root works too, since the port is always a free high port (sshd then runs without
privilege separation). Nothing here reaches an address outside 127.0.0.0/8.

Host-side CPU (``HostCPU``): every sshd is started inside one cgroup of its own, so all it
forks (sessions, shells, executors, pyinfra's and ansible's commands) is counted there,
whether waited for or not:

- cgroup v1: a ``cpuacct`` group ``/sys/fs/cgroup/cpuacct/<name>``, ``cpuacct.usage``;
- cgroup v2: ``/sys/fs/cgroup/<name>``, ``cpu.stat`` ``usage_usec``;
- neither writable (not root): the listeners' own and waited-for children's CPU from
  ``/proc/<pid>/stat`` (utime+stime+cutime+cstime); sshd waits for its sessions and they
  for their shells, so that is the same sum once every session has ended — except for a
  process that outlives its session (it is then reaped by init, not counted).

Before each reading the fleet waits (up to 5 s) until no session is left, so that the
CPU of sessions still closing after a tool exits is counted with the run that caused it.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
MAX_LISTEN = 16  # OpenSSH's MAX_LISTEN_SOCKS: addresses one sshd listens on
HOSTS_PER_OCTET = 250


def have_sshd() -> bool:
    return os.path.exists(SSHD) and shutil.which("ssh-keygen") is not None


def keygen(path: Path) -> str:
    """A fresh ed25519 key pair at ``path``; returns the public key line."""
    for p in (path, path.with_suffix(".pub")):
        p.unlink(missing_ok=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
                   check=True)
    return path.with_suffix(".pub").read_text().strip()


def free_port(address: str) -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


@dataclass
class FleetHost:
    name: str
    address: str
    port: int


class HostCPU:
    """CPU seconds used by the fleet's servers and everything they started (see module)."""

    def __init__(self, name: str) -> None:
        self.kind = "proc"
        self.group: Path | None = None
        self.listeners: list[int] = []
        v1 = Path("/sys/fs/cgroup/cpuacct")
        v2 = Path("/sys/fs/cgroup")
        for kind, base in (("cgroup v1 cpuacct", v1), ("cgroup v2", v2)):
            marker = base / ("cgroup.procs" if kind.startswith("cgroup v1")
                             else "cgroup.controllers")
            if not marker.is_file() or not os.access(base, os.W_OK):
                continue
            group = base / name
            try:
                group.mkdir(exist_ok=True)
            except OSError:
                continue
            self.kind, self.group = kind, group
            break

    def describe(self) -> str:
        if self.group is None:
            return "the sshd listeners' /proc/<pid>/stat utime+stime+cutime+cstime"
        what = "cpuacct.usage" if self.kind.startswith("cgroup v1") else "cpu.stat usage_usec"
        return f"{self.kind} group {self.group} ({what}): every sshd and all it starts"

    def enter(self) -> None:
        """In the child before exec (preexec_fn): join the group."""
        if self.group is not None:
            (self.group / "cgroup.procs").write_text(str(os.getpid()))

    def pids(self) -> list[int]:
        if self.group is not None:
            return [int(x) for x in (self.group / "cgroup.procs").read_text().split()]
        out = subprocess.run(["pgrep", "-P", ",".join(map(str, self.listeners))],
                             capture_output=True, text=True, check=False).stdout
        return [*self.listeners, *(int(x) for x in out.split())]

    def settle(self, timeout: float = 5.0) -> None:
        """Wait until only the listeners are left (every session closed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if set(self.pids()) <= set(self.listeners):
                return
            time.sleep(0.02)

    def seconds(self) -> float | None:
        self.settle()
        if self.group is not None:
            if self.kind.startswith("cgroup v1"):
                return int((self.group / "cpuacct.usage").read_text()) / 1e9
            stat = (self.group / "cpu.stat").read_text().split()
            return int(stat[stat.index("usage_usec") + 1]) / 1e6
        total = 0
        for pid in self.listeners:
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
                total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
        return total / os.sysconf("SC_CLK_TCK")

    def remove(self) -> None:
        if self.group is None:
            return
        for pid in self.pids():
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                self.group.rmdir()
                return
            except OSError:
                time.sleep(0.05)


class LoopbackFleet:
    """``count`` hosts ``lo0001``.. on 127.<net>.x.y, one address each, all on one port."""

    def __init__(self, root: Path, count: int, net: int | None = None,
                 max_startups: int = 10000, max_sessions: int = 100) -> None:
        self.root = root
        self.count = count
        self.net = net if net is not None else 20 + os.getpid() % 60
        self.max_startups = max_startups
        self.max_sessions = max_sessions
        self.user = pwd.getpwuid(os.getuid()).pw_name
        root.mkdir(parents=True, exist_ok=True)
        self.home = root / "home"  # the hosts' HOME: the executor's cache lives here
        self.home.mkdir(exist_ok=True)
        self.host_key = root / "host_key"
        self.client_key = root / "client_key"
        self.host_pub = keygen(self.host_key)
        keygen(self.client_key)
        shutil.copy(self.client_key.with_suffix(".pub"), root / "authorized_keys")
        self.port = free_port(self.address(0))
        self.hosts = [FleetHost(f"lo{i + 1:04d}", self.address(i), self.port)
                      for i in range(count)]
        self.cpu = HostCPU(f"hostplane-loopback-{os.getpid()}")
        self.procs: list[subprocess.Popen[bytes]] = []

    def address(self, index: int) -> str:
        high, low = divmod(index, HOSTS_PER_OCTET)
        return f"127.{self.net}.{high + 1}.{low + 1}"

    def _sshd_config(self, index: int, addresses: list[str]) -> Path:
        lines = [f"ListenAddress {a}:{self.port}" for a in addresses]
        lines += [
            f"HostKey {self.host_key}",
            f"AuthorizedKeysFile {self.root / 'authorized_keys'}",
            f"PidFile {self.root / f'sshd{index}.pid'}",
            "StrictModes no", "UsePAM no", "PasswordAuthentication no",
            "KbdInteractiveAuthentication no", "PermitRootLogin prohibit-password",
            f"AllowUsers {self.user}", "UseDNS no", "PrintMotd no", "PrintLastLog no",
            f"SetEnv HOME={self.home}",
            f"MaxStartups {self.max_startups}", f"MaxSessions {self.max_sessions}",
            "LoginGraceTime 120", "Subsystem sftp internal-sftp", "LogLevel ERROR",
        ]
        path = self.root / f"sshd{index}.conf"
        path.write_text("\n".join(lines) + "\n")
        return path

    def start(self) -> LoopbackFleet:
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation
        addresses = [h.address for h in self.hosts]
        log = (self.root / "sshd.log").open("ab")
        try:
            for i in range(0, len(addresses), MAX_LISTEN):
                conf = self._sshd_config(i // MAX_LISTEN, addresses[i:i + MAX_LISTEN])
                self.procs.append(subprocess.Popen(
                    [SSHD, "-D", "-e", "-f", str(conf)], stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL, stderr=log, start_new_session=True,
                    preexec_fn=self.cpu.enter))
        finally:
            log.close()
        self.cpu.listeners = [p.pid for p in self.procs]
        self._wait_listening(addresses)
        return self

    def _wait_listening(self, addresses: list[str], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        pending = list(addresses)
        while pending:
            dead = [p for p in self.procs if p.poll() is not None]
            if dead:
                raise RuntimeError("sshd exited: "
                                   + (self.root / "sshd.log").read_text()[-2000:])
            still = []
            for addr in pending:
                with socket.socket() as sock:
                    sock.settimeout(0.2)
                    if sock.connect_ex((addr, self.port)) != 0:
                        still.append(addr)
            pending = still
            if pending and time.monotonic() > deadline:
                raise RuntimeError(f"sshd not listening on {pending[:5]}...")
            if pending:
                time.sleep(0.05)

    def client_files(self, n: int, folder: Path) -> tuple[Path, Path]:
        """known_hosts (a line per host) and ssh_config (a Host block per host) for the
        first ``n`` hosts, in ``folder``."""
        folder.mkdir(parents=True, exist_ok=True)
        known_hosts = folder / "known_hosts"
        ssh_config = folder / "ssh_config"
        hosts = self.hosts[:n]
        known_hosts.write_text("".join(f"[{h.address}]:{h.port} {self.host_pub}\n"
                                       for h in hosts))
        ssh_config.write_text("\n".join(
            f"Host {h.name}\n  HostName {h.address}\n  Port {h.port}\n  User {self.user}\n"
            f"  IdentityFile {self.client_key}\n  IdentitiesOnly yes\n"
            f"  UserKnownHostsFile {known_hosts}\n  StrictHostKeyChecking yes\n"
            for h in hosts))
        return known_hosts, ssh_config

    def control_env(self) -> dict[str, str]:
        """The control side's own HOME and job store, under the fleet's folder."""
        home = self.root / "control-home"
        state = home / "state"
        state.mkdir(parents=True, exist_ok=True)
        return {"HOME": str(home), "XDG_STATE_HOME": str(state),
                "HOSTPLANE_DB": f"sqlite:///{state / 'jobs.db'}",
                "HOSTPLANE_CONTROL_CACHE_DIR": str(state / "control-cache")}

    def describe(self) -> str:
        return (f"{len(self.procs)} sshd on {self.count} addresses 127.{self.net}.x.y "
                f"port {self.port}, user {self.user}, MaxStartups {self.max_startups}, "
                f"MaxSessions {self.max_sessions}, HOME {self.home}")

    def stop(self) -> None:
        for p in self.procs:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=10)
        self.cpu.remove()
        self.procs = []
