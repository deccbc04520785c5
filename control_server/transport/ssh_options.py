"""SSH options a host's inventory vars carry the Ansible way (``ansible_ssh_common_args``,
``ansible_ssh_extra_args``): ``-F FILE``, ``-o UserKnownHostsFile=...``,
``-o StrictHostKeyChecking=...``, so an inventory written for Ansible works unchanged."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_STRICT = {"yes": "strict", "accept-new": "accept-new", "no": "off", "off": "off"}


@dataclass(frozen=True)
class HostSSHOptions:
    ssh_config: Path | None = None
    known_hosts: Path | None = None
    host_key_checking: str | None = None


def host_key_policy(opts: HostSSHOptions, settings_policy: str,
                    settings_known: Path | None) -> tuple[str, Path | None]:
    """The host's own ssh args win over the run's flags (as with ssh's -o over ssh_config)."""
    known = opts.known_hosts or settings_known
    return opts.host_key_checking or settings_policy, known.expanduser() if known else None


def _options(words: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    it = iter(range(len(words)))
    for i in it:
        word = words[i]
        if word == "-o" and i + 1 < len(words):
            key, _, value = words[i + 1].partition("=")
            out[key.strip().lower()] = value.strip()
            next(it, None)
        elif word.startswith("-o") and len(word) > 2:
            key, _, value = word[2:].partition("=")
            out[key.strip().lower()] = value.strip()
        elif word == "-F" and i + 1 < len(words):
            out["-f"] = words[i + 1]
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
    known = opts.get("userknownhostsfile")
    strict = opts.get("stricthostkeychecking", "").lower()
    return HostSSHOptions(
        ssh_config=Path(opts["-f"]).expanduser() if "-f" in opts else None,
        known_hosts=Path(known.split()[0]).expanduser() if known else None,
        host_key_checking=_STRICT.get(strict),
    )
