"""Where and how to reach a host, from its ``ansible_*`` connection variables.

Aliases follow ansible's ssh plugin: when both spellings are set the later one in its list
wins (``ansible_ssh_host`` over ``ansible_host``, and so on).  Unset values stay None so that
``~/.ssh/config`` (then ssh's defaults) decides, as it does for ansible.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from control_server.errors import InventoryError
from control_server.inventory.model import Host
from control_server.inventory.values import VaultText

_ALIASES = {
    "address": ("ansible_host", "ansible_ssh_host"),
    "port": ("ansible_port", "ansible_ssh_port"),
    "user": ("ansible_user", "ansible_ssh_user"),
    "key_file": ("ansible_private_key_file", "ansible_ssh_private_key_file"),
    "connection": ("ansible_connection",),
    "python": ("ansible_python_interpreter",),
    "become": ("ansible_become",),
    "become_user": ("ansible_become_user",),
}

_CONNECTIONS = {
    "ssh": "ssh",
    "smart": "ssh",
    "local": "local",
    "paramiko": "paramiko",
    "paramiko_ssh": "paramiko",
}

_TRUE = frozenset({"y", "yes", "on", "1", "true", "t"})
_FALSE = frozenset({"n", "no", "off", "0", "false", "f", ""})


@dataclass(frozen=True)
class ConnectionTarget:
    host: str  # inventory name
    address: str  # ansible_host, else the inventory name
    port: int | None  # None: ~/.ssh/config decides, else 22
    user: str | None  # None: ~/.ssh/config, else the current user
    key_file: str | None
    connection: str  # 'ssh' | 'local' | 'paramiko'
    python: str  # ansible_python_interpreter, else 'python3'
    become: bool
    become_user: str | None


Renderer = Callable[[str, Any], Any]


def connection_target(host: Host, render: Renderer | None = None) -> ConnectionTarget:
    """The connection settings of ``host``.

    ``render(name, value)`` may turn a templated value (``"{{ ... }}"``) into its final
    value; without it values are taken as written.  Bad values raise InventoryError.
    """

    def get(field: str) -> Any:
        value = None
        for name in _ALIASES[field]:
            if host.vars.get(name) is not None:
                value = host.vars[name]
                if render is not None:
                    value = render(name, value)
        if isinstance(value, VaultText):
            raise _error(
                host, _ALIASES[field][0], "is vault-encrypted; hostplane cannot decrypt it"
            )
        return value

    address = get("address")
    key_file = get("key_file")
    python = get("python")
    return ConnectionTarget(
        host=host.name,
        address=str(address) if address not in (None, "") else host.name,
        port=_port(host, get("port")),
        user=_text(get("user")),
        key_file=os.path.expanduser(os.path.expandvars(str(key_file))) if key_file else None,
        connection=_connection(host, get("connection")),
        python=_python(host, python),
        become=_boolean(host, "ansible_become", get("become")),
        become_user=_text(get("become_user")),
    )


def _port(host: Host, value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError
        port = int(value)
    except (TypeError, ValueError, OverflowError):
        raise _error(host, "ansible_port", f"must be a port number, got {value!r}") from None
    if not 0 < port < 65536:
        raise _error(host, "ansible_port", f"must be between 1 and 65535, got {port}")
    return port


def _connection(host: Host, value: Any) -> str:
    if value is None or value == "":
        return "local" if host.implicit else "ssh"
    name = str(value)
    for prefix in ("ansible.builtin.", "ansible.legacy."):
        name = name.removeprefix(prefix)
    if name not in _CONNECTIONS:
        supported = ", ".join(sorted(_CONNECTIONS))
        raise _error(host, "ansible_connection", f"{value!r} is not supported ({supported})")
    return _CONNECTIONS[name]


def _python(host: Host, value: Any) -> str:
    if value is None or value == "" or value == "auto" or str(value).startswith("auto_"):
        # ansible's 'auto' discovery boils down to python3 on any host hostplane supports.
        return sys.executable if host.implicit else "python3"
    return str(value)


def _boolean(host: Host, name: str, value: Any) -> bool:
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, int | float):
        if value in (0, 1):
            return bool(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise _error(host, name, f"must be a boolean, got {value!r}")


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return str(value)


def _error(host: Host, var: str, message: str) -> InventoryError:
    return InventoryError(f"host {host.name}: {var} {message}")
