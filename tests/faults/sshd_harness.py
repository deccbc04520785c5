"""A real OpenSSH server on loopback for the fault suite: its own config, host key, client
key, known_hosts, ``ssh_config`` and inventory, answering on several 127.x addresses (one
"host" each), with the executor's cache and journals under a temporary HOME.

Everything lives under one folder; ``stop()`` kills the server and every session it
started. Nothing here reaches an address outside 127.0.0.0/8.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
# OpenSSH's MAX_LISTEN_SOCKS: one sshd listens on at most 16 addresses, so hosts past the
# 16th share an address (several inventory hosts behind one sshd, as with a bastion).
MAX_ADDRESSES = 16


def have_sshd() -> bool:
    return os.path.exists(SSHD) and os.geteuid() == 0


def keygen(path: Path, kind: str = "ed25519") -> str:
    """A fresh key pair at ``path``; returns the public key line."""
    for p in (path, path.with_suffix(".pub")):
        p.unlink(missing_ok=True)
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", str(path)], check=True)
    return path.with_suffix(".pub").read_text().strip()


def free_port(address: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


@dataclass
class LoopbackSSHD:
    """``count`` hosts ``node01``.. on 127.<net>.0.1.., one sshd, one port."""

    root: Path
    count: int = 2
    net: int = 77
    extra_config: list[str] = field(default_factory=list)
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.home = self.root / "home"
        self.home.mkdir(exist_ok=True)
        self.host_key = self.root / "host_key"
        self.client_key = self.root / "client_key"
        self.known_hosts = self.root / "known_hosts"
        self.ssh_config = self.root / "ssh_config"
        self.inventory = self.root / "hosts.ini"
        self.log = self.root / "sshd.log"
        if not self.port:
            self.port = free_port(self.address(0))
        self.host_pub = keygen(self.host_key)
        keygen(self.client_key)
        shutil.copy(self.client_key.with_suffix(".pub"), self.root / "authorized_keys")

    # --- names ----------------------------------------------------------------------

    def address(self, index: int) -> str:
        index %= MAX_ADDRESSES
        return f"127.{self.net}.0.{index + 1}"

    @property
    def hosts(self) -> list[str]:
        return [f"node{i + 1:02d}" for i in range(self.count)]

    def addresses(self) -> dict[str, str]:
        return {name: self.address(i) for i, name in enumerate(self.hosts)}

    # --- files ----------------------------------------------------------------------

    def _config(self) -> str:
        listen = dict.fromkeys(self.addresses().values())  # distinct, in order
        lines = [f"ListenAddress {a}:{self.port}" for a in listen]
        lines += [
            f"HostKey {self.host_key}",
            f"AuthorizedKeysFile {self.root / 'authorized_keys'}",
            f"PidFile {self.root / 'sshd.pid'}",
            "StrictModes no", "UsePAM no", "PasswordAuthentication no",
            "KbdInteractiveAuthentication no", "PermitRootLogin prohibit-password",
            f"SetEnv HOME={self.home}", "MaxSessions 100", "LogLevel INFO",
            *self.extra_config,
        ]
        return "\n".join(lines) + "\n"

    def write_client_files(self, aliases: bool = True) -> None:
        """known_hosts with the real key per ``[addr]:port``; an ssh_config with one ``Host``
        alias per host (HostName, Port); an INI inventory naming the aliases."""
        self.known_hosts.write_text("".join(
            f"[{a}]:{self.port} {self.host_pub}\n" for a in dict.fromkeys(self.addresses().values())
        ))
        blocks = []
        for name, addr in self.addresses().items():
            blocks.append(
                f"Host {name}\n  HostName {addr}\n  Port {self.port}\n  User root\n"
                f"  IdentityFile {self.client_key}\n  IdentitiesOnly yes\n"
                f"  UserKnownHostsFile {self.known_hosts}\n"
            )
        self.ssh_config.write_text("\n".join(blocks))
        if aliases:
            hosts = "\n".join(self.hosts)
        else:
            hosts = "\n".join(
                f"{n} ansible_host={a} ansible_port={self.port} ansible_user=root "
                f"ansible_ssh_private_key_file={self.client_key}"
                for n, a in self.addresses().items()
            )
        self.inventory.write_text(f"[nodes]\n{hosts}\n")

    # --- lifecycle ------------------------------------------------------------------

    def start(self) -> LoopbackSSHD:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        (self.root / "sshd_config").write_text(self._config())
        if not self.ssh_config.exists():
            self.write_client_files()
        self.proc = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(self.root / "sshd_config")],
            stdout=subprocess.DEVNULL, stderr=open(self.log, "ab"),  # noqa: SIM115
            start_new_session=True,
        )
        self._wait_listening()
        return self

    def _wait_listening(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        pending = set(self.addresses().values())
        while pending:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited: {self.log.read_text()[-2000:]}")
            for addr in list(pending):
                with socket.socket() as sock:
                    sock.settimeout(0.2)
                    if sock.connect_ex((addr, self.port)) == 0:
                        pending.discard(addr)
            if pending and time.monotonic() > deadline:
                raise RuntimeError(f"sshd not listening on {sorted(pending)}")
            time.sleep(0.05)

    def restart(self, extra_config: list[str] | None = None) -> None:
        self.stop()
        if extra_config is not None:
            self.extra_config = extra_config
        self.start()

    def swap_host_key(self) -> str:
        """A new host key for the server (known_hosts keeps the old one)."""
        self.host_pub = keygen(self.host_key)
        self.restart()
        return self.host_pub

    def session_pids(self) -> list[int]:
        """PIDs of every sshd process under the listener: each connection's monitor and its
        session (killing them all cuts the connection; the executor below is not one)."""
        if self.proc is None:
            return []
        found, todo = [], [self.proc.pid]
        while todo:
            out = subprocess.run(["pgrep", "-P", str(todo.pop())], capture_output=True,
                                 text=True)
            for pid in map(int, out.stdout.split()):
                todo.append(pid)
                try:
                    if Path(f"/proc/{pid}/comm").read_text().strip() == "sshd":
                        found.append(pid)
                except OSError:
                    continue
        return found

    def stop(self) -> None:
        if self.proc is None:
            return
        sessions = self.session_pids()
        with _quiet():
            os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(timeout=10)
        for pid in sessions:
            with _quiet():
                os.kill(pid, signal.SIGKILL)
        self.proc = None

    def cli_args(self) -> list[str]:
        return ["-i", str(self.inventory), "-F", str(self.ssh_config),
                "--known-hosts", str(self.known_hosts)]

    def env(self) -> dict[str, str]:
        """Environment for a control-side process: its own HOME and state, never ~/.cache."""
        control_home = self.root / "control-home"
        control_home.mkdir(exist_ok=True)
        env = dict(os.environ)
        env.update(HOME=str(control_home), XDG_STATE_HOME=str(control_home / "state"),
                   HOSTPLANE_DB=f"sqlite:///{control_home / 'jobs.db'}")
        return env


class _quiet:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return exc[0] is not None and issubclass(exc[0], (ProcessLookupError, PermissionError))  # type: ignore[arg-type]
