"""Transports: how the control server reaches a host (``ssh`` via asyncssh, ``local``,
``paramiko``). ``open_transport`` picks one for a connection target."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from control_server.errors import InputError
from control_server.inventory import ConnectionTarget
from control_server.transport.base import ChannelResult, Transport, TransportSettings

if TYPE_CHECKING:
    from control_server.transport.limiter import HandshakeLimiter

TRANSPORTS = ("ssh", "local", "paramiko")

__all__ = [
    "TRANSPORTS",
    "ChannelResult",
    "HandshakeLimiter",
    "Transport",
    "TransportSettings",
    "open_transport",
]


def __getattr__(name: str) -> Any:
    # The limiter loads asyncio: only a run needs it, not the CLI reading its flags.
    if name == "HandshakeLimiter":
        from control_server.transport.limiter import HandshakeLimiter

        return HandshakeLimiter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open_transport(
    target: ConnectionTarget,
    hostvars: Mapping[str, Any],
    settings: TransportSettings,
    limiter: HandshakeLimiter,
    override: str | None = None,
) -> Transport:
    """The transport for one host: ``--transport`` wins over ``ansible_connection``."""
    from control_server.transport.ssh_options import host_ssh_options

    kind = override or target.connection
    if kind == "local":
        from control_server.transport.local import LocalTransport

        return LocalTransport(target, settings)
    if kind == "paramiko":
        try:
            from control_server.transport.paramiko_ssh import ParamikoTransport
        except ImportError:
            raise InputError(
                f"host {target.host}: transport paramiko needs the optional extra: "
                "pip install 'hostplane[paramiko]'"
            ) from None
        return ParamikoTransport(target, settings, limiter, host_ssh_options(hostvars))
    if kind in ("ssh", "smart"):
        from control_server.transport.ssh import AsyncSSHTransport

        return AsyncSSHTransport(target, settings, limiter, host_ssh_options(hostvars))
    raise InputError(
        f"host {target.host}: unknown connection {kind!r} (known: {', '.join(TRANSPORTS)})"
    )
