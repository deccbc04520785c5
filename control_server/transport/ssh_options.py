"""Which host-key rules apply to one host: the run's flags, the inventory's ssh args (the
Ansible way: ``ansible_ssh_common_args`` / ``ansible_ssh_extra_args`` with ``-F FILE``,
``-o UserKnownHostsFile=...``, ``-o StrictHostKeyChecking=...``), then ssh_config.

Precedence is ssh's own (the first value obtained wins): an option given on hostplane's
command line, then the inventory's ssh args (ssh's ``-o``), then ssh_config, then ssh's
defaults. Pure Python, so the CLI can warn before connecting and both transports agree.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from control_server.transport import known_hosts as kh
from control_server.transport import ssh_config
from control_server.transport.base import TransportSettings

_STRICT = {"yes": "strict", "ask": "strict", "accept-new": "accept-new", "no": "off",
           "off": "off", "strict": "strict"}
DEFAULT_SSH_CONFIG = Path("~/.ssh/config")


@dataclass(frozen=True)
class HostSSHOptions:
    ssh_config: Path | None = None
    known_hosts: Path | None = None  # the first UserKnownHostsFile (where keys are added)
    host_key_checking: str | None = None
    known_hosts_files: tuple[Path, ...] = ()  # every UserKnownHostsFile path
    global_known_hosts: tuple[Path, ...] | None = None
    host_key_alias: str | None = None


@dataclass(frozen=True)
class HostKeyPlan:
    """How one host's key is checked: the policy (and who set it) and where to look."""

    policy: str  # strict | accept-new | off
    source: str  # 'default' | 'cli' | 'inventory' | 'ssh_config'
    user_files: tuple[str, ...]
    global_files: tuple[str, ...]
    alias: str | None
    hostname: str
    port: int | None
    proxy_jump: str | None

    @property
    def files(self) -> tuple[str, ...]:
        return self.user_files + tuple(f for f in self.global_files if f not in self.user_files)

    @property
    def learn_file(self) -> str | None:
        """accept-new adds keys to the first user file, as ssh does."""
        return self.user_files[0] if self.user_files else None

    def name(self, host: str | None = None, port: int | None = None) -> str:
        return kh.lookup_name(host or self.hostname, port if host else self.port, self.alias)


def host_key_plan(host: str, port: int | None, user: str | None, opts: HostSSHOptions,
                  settings: TransportSettings) -> HostKeyPlan:
    """The rules for ``host`` (the address the transport connects to, before ssh_config)."""
    config = opts.ssh_config or settings.ssh_config or DEFAULT_SSH_CONFIG
    cfg = ssh_config.resolve(str(config.expanduser()), host, user)
    policy, source = "strict", "default"
    if settings.host_key_checking is not None:
        policy, source = settings.host_key_checking, "cli"
    elif opts.host_key_checking is not None:
        policy, source = opts.host_key_checking, "inventory"
    elif cfg.strict is not None and cfg.strict in _STRICT:
        policy, source = _STRICT[cfg.strict], "ssh_config"
    if settings.known_hosts is not None:
        user_files: tuple[str, ...] = kh.expand([settings.known_hosts])
    elif opts.known_hosts_files:
        user_files = kh.expand(opts.known_hosts_files)
    elif cfg.user_known_hosts is not None:
        user_files = cfg.user_known_hosts
    else:
        user_files = kh.expand(kh.DEFAULT_USER_FILES)
    if opts.global_known_hosts is not None:
        global_files = kh.expand(opts.global_known_hosts)
    elif cfg.global_known_hosts is not None:
        global_files = cfg.global_known_hosts
    else:
        global_files = kh.DEFAULT_GLOBAL_FILES
    return HostKeyPlan(
        policy=policy, source=source, user_files=user_files,
        global_files=global_files + kh.expand(settings.extra_known_hosts),
        alias=opts.host_key_alias or cfg.host_key_alias,
        hostname=cfg.hostname, port=port if port is not None else cfg.port,
        proxy_jump=cfg.proxy_jump,
    )


def _options(words: list[str]) -> dict[str, str]:
    """``-o Key=Value`` / ``-oKey=Value`` / ``-F FILE``; the first value wins, as in ssh."""
    out: dict[str, str] = {}
    it = iter(range(len(words)))
    for i in it:
        word = words[i]
        if word == "-o" and i + 1 < len(words):
            key, _, value = words[i + 1].partition("=")
            out.setdefault(key.strip().lower(), value.strip())
            next(it, None)
        elif word.startswith("-o") and len(word) > 2:
            key, _, value = word[2:].partition("=")
            out.setdefault(key.strip().lower(), value.strip())
        elif word == "-F" and i + 1 < len(words):
            out.setdefault("-f", words[i + 1])
            next(it, None)
    return out


def host_ssh_options(hostvars: Mapping[str, Any]) -> HostSSHOptions:
    text = " ".join(
        str(hostvars.get(key) or "")
        for key in ("ansible_ssh_common_args", "ansible_ssh_extra_args")
    )
    try:
        words = shlex.split(text)
    except ValueError:
        words = text.split()
    opts = _options(words)
    known = tuple(Path(p).expanduser() for p in opts.get("userknownhostsfile", "").split())
    global_known = opts.get("globalknownhostsfile")
    strict = opts.get("stricthostkeychecking", "").lower()
    return HostSSHOptions(
        ssh_config=Path(opts["-f"]).expanduser() if "-f" in opts else None,
        known_hosts=known[0] if known else None,
        host_key_checking=_STRICT.get(strict),
        known_hosts_files=known,
        global_known_hosts=(tuple(Path(p).expanduser() for p in global_known.split())
                            if global_known is not None else None),
        host_key_alias=opts.get("hostkeyalias") or None,
    )


_UNVERIFIED = "host keys are NOT verified; anyone on the path can impersonate a host"
CLI_OFF_WARNING = f"--host-key-checking off: {_UNVERIFIED}"
_SOURCES = {"inventory": "StrictHostKeyChecking=no in the inventory's ssh args",
            "ssh_config": "StrictHostKeyChecking no in ssh_config"}


def off_warnings(plans: Iterable[tuple[str, HostKeyPlan | None]]) -> list[str]:
    """The --host-key-checking off warning, for hosts whose inventory or ssh_config turns
    checking off (the flag's own warning is printed once, by the CLI)."""
    hosts: dict[str, list[str]] = {}
    for name, plan in plans:
        if plan is not None and plan.policy == "off" and plan.source in _SOURCES:
            hosts.setdefault(plan.source, []).append(name)
    out = []
    for source, names in hosts.items():
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        out.append(f"{_SOURCES[source]} ({shown}): {_UNVERIFIED}")
    return out
