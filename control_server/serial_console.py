"""``hostplane console``: an instance's serial console over its host's SSH connection.

The host runs ``virsh console --force NAME`` in a pty channel; the domain's serial is a pty
with a ``<log file=...>`` (``command_templates/partials/domain.xml.j2``), so what the guest
prints still lands in the log that ``wait`` reads while someone is attached. The local
terminal is put in raw mode, so every key (Ctrl-C included) goes to the guest; only the
escape byte (``^]``, as virsh's) is kept here and ends the session. ``--tail`` reads the
log without attaching.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
import termios
import tty
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from control_server.errors import HostplaneError
from control_server.transport.base import Terminal, Transport
from host_executor.actions import libvirt_xml

ESCAPE = b"\x1d"  # ^] (Ctrl+]), what virsh console and telnet leave on
READ_SIZE = 4096
Wrap = Callable[[str], str]  # a command as the host runs it (through sudo with become)


class InstanceError(HostplaneError):
    """The instance is not there to attach to (undefined, not running): the host's fault,
    as a failed step (exit 2)."""

    exit_code = 2

    def __init__(self, message: str, host: str, instance: str) -> None:
        super().__init__(f"host {host}: instance {instance}: {message}")
        self.host = host
        self.instance = instance


class EscapeFilter:
    """Splits keyboard input at the escape byte: what comes before it goes to the guest,
    the escape and anything after it are dropped (the session ends there)."""

    def __init__(self, escape: bytes = ESCAPE) -> None:
        self.escape = escape
        self.escaped = False

    def feed(self, data: bytes) -> bytes:
        if self.escaped:
            return b""
        head, sep, _rest = data.partition(self.escape)
        if sep:
            self.escaped = True
        return head


@contextlib.contextmanager
def raw_mode(fd: int) -> Iterator[None]:
    """The terminal on ``fd`` in raw mode for the block, its settings restored after (on
    any exit: an exception must not leave the user's shell without echo)."""
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd, termios.TCSANOW)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def window_size(fd: int) -> tuple[int, int]:
    """(columns, rows) of the terminal on ``fd``; 80x24 when it is not one."""
    try:
        size = os.get_terminal_size(fd)
    except OSError:
        return 80, 24
    return size.columns, size.lines


@dataclass
class Session:
    """How a console session ended: ``escape`` (the user left), ``eof`` (the input ended:
    not a terminal) or ``remote`` (the channel closed: virsh exited, the connection went),
    with the remote exit status if known."""

    reason: str
    exit_status: int | None = None


async def attach(term: Terminal, fd_in: int, fd_out: int, escape: bytes = ESCAPE) -> Session:
    """Copy ``fd_in`` to ``term`` and ``term`` to ``fd_out`` until the escape byte is typed
    or the remote side ends; the window size follows SIGWINCH."""
    loop = asyncio.get_running_loop()
    keys = EscapeFilter(escape)
    left = loop.create_future()

    def on_input() -> None:
        try:
            data = os.read(fd_in, READ_SIZE)
        except OSError:
            data = b""
        forward = keys.feed(data)
        if forward:
            term.write(forward)
        if (keys.escaped or not data) and not left.done():
            left.set_result("escape" if keys.escaped else "eof")

    async def copy_out() -> None:
        while data := await term.read():
            os.write(fd_out, data)

    loop.add_reader(fd_in, on_input)
    loop.add_signal_handler(signal.SIGWINCH, lambda: term.resize(*window_size(fd_out)))
    output = asyncio.ensure_future(copy_out())
    try:
        await asyncio.wait([output, left], return_when=asyncio.FIRST_COMPLETED)
    finally:
        loop.remove_reader(fd_in)
        loop.remove_signal_handler(signal.SIGWINCH)
    if not output.done():
        output.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await output
    status = await term.close()
    return Session(left.result() if left.done() else "remote", status)


# --- what runs on the host -----------------------------------------------------------


def virsh(uri: str, *args: str) -> str:
    return shlex.join(["virsh", "-q", "-c", uri, *args])


async def _run(transport: Transport, command: str) -> tuple[int | None, str, str]:
    out: list[bytes] = []
    result = await transport.run(command, b"", out.append)
    return (result.exit_status, b"".join(out).decode(errors="replace"),
            result.stderr.decode(errors="replace").strip())


async def domain_state(transport: Transport, wrap: Wrap, uri: str, name: str) -> str:
    """The domain's state as ``virsh domstate`` says it; InstanceError when undefined."""
    host = transport.target.host
    status, out, err = await _run(transport, wrap(virsh(uri, "domstate", name)))
    if status == 127:
        raise InstanceError(f"virsh not found on the host ({err})", host, name)
    if status != 0:
        if "ailed to get domain" in err or "no domain with matching name" in err:
            raise InstanceError("not defined (no libvirt domain of that name)", host, name)
        raise InstanceError(f"virsh domstate failed: {err or f'exit {status}'}", host, name)
    return out.strip()


async def tail(transport: Transport, wrap: Wrap, uri: str, name: str, lines: int) -> str:
    """The last ``lines`` lines of the instance's serial log (running or not)."""
    host = transport.target.host
    await domain_state(transport, wrap, uri, name)
    status, xml, err = await _run(transport, wrap(virsh(uri, "dumpxml", "--inactive", name)))
    if status != 0:
        raise InstanceError(f"virsh dumpxml failed: {err or f'exit {status}'}", host, name)
    logs = libvirt_xml.file_sources(ET.fromstring(xml))
    if not logs:
        raise InstanceError("its domain has no serial log (<serial><log file=...>)", host, name)
    command = shlex.join(["tail", "-n", str(lines), "--", logs[0]])
    status, out, err = await _run(transport, wrap(command))
    if status != 0:
        raise InstanceError(f"cannot read {logs[0]}: {err or f'exit {status}'}", host, name)
    return out


async def open_console(transport: Transport, wrap: Wrap, uri: str, name: str,
                       term_type: str, size: tuple[int, int]) -> Terminal:
    """A terminal on the instance's serial console; InstanceError unless it runs."""
    state = await domain_state(transport, wrap, uri, name)
    if state != "running":
        raise InstanceError(f"not running (state: {state or 'unknown'}); start it with "
                            "the start_instance template", transport.target.host, name)
    return await transport.open_terminal(wrap(virsh(uri, "console", "--force", name)),
                                         term_type, size)
