"""``hostplane console``'s plumbing on a real pty pair (the test holds the master, the
console the slave as its terminal): raw mode, the ^] escape, output, the window size;
and the CLI's checks through the local transport with a stand-in ``virsh`` on PATH."""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import signal
import struct
import termios
import textwrap
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from control_server import serial_console as sc
from control_server.cli import main
from host_executor.actions import libvirt_xml


class FakeTerminal(sc.Terminal):
    """The host's side: records what it is sent, plays back what the guest printed."""

    def __init__(self, output: list[bytes], end: bool = False) -> None:
        self.sent = b""
        self.sizes: list[tuple[int, int]] = []
        self._output = asyncio.Queue[bytes]()
        for chunk in output:
            self._output.put_nowait(chunk)
        if end:
            self._output.put_nowait(b"")
        self.closed = False

    async def read(self) -> bytes:
        return await self._output.get()

    def write(self, data: bytes) -> None:
        self.sent += data

    def resize(self, columns: int, rows: int) -> None:
        self.sizes.append((columns, rows))

    async def close(self) -> int | None:
        self.closed = True
        return 0


@pytest.fixture
def pair() -> Iterator[tuple[int, int]]:
    master, slave = pty.openpty()
    yield master, slave
    os.close(master)
    os.close(slave)


def _read_until(fd: int, wanted: bytes) -> bytes:
    got = b""
    while wanted not in got:
        got += os.read(fd, 1024)
    return got


def test_the_escape_ends_input_and_nothing_after_it_is_sent() -> None:
    keys = sc.EscapeFilter()
    assert keys.feed(b"ls\r") == b"ls\r"
    assert not keys.escaped
    assert keys.feed(b"x\x1dafter") == b"x"
    assert keys.escaped
    assert keys.feed(b"more") == b""


def test_the_serial_log_of_a_pty_serial_and_of_a_file_one() -> None:
    pty_xml = ("<domain><devices><serial type='pty'><log file='/l/a.log' append='off'/>"
               "<target port='0'/></serial><console type='pty'><target type='serial'/>"
               "</console></devices></domain>")
    file_xml = ("<domain><devices><serial type='file'><source path='/l/b.log'/></serial>"
                "<console type='file'><source path='/l/b.log'/></console></devices></domain>")
    assert libvirt_xml.file_sources(ET.fromstring(pty_xml)) == ["/l/a.log"]
    assert libvirt_xml.file_sources(ET.fromstring(file_xml)) == ["/l/b.log"]


def test_raw_mode_is_restored_even_after_an_error(pair: tuple[int, int]) -> None:
    _master, slave = pair
    before = termios.tcgetattr(slave)
    assert before[3] & termios.ECHO and before[3] & termios.ICANON
    with pytest.raises(RuntimeError), sc.raw_mode(slave):
        inside = termios.tcgetattr(slave)
        assert not inside[3] & (termios.ECHO | termios.ICANON | termios.ISIG)
        raise RuntimeError("boom")
    assert termios.tcgetattr(slave) == before


def test_keys_go_to_the_host_output_comes_back_and_the_escape_leaves(
        pair: tuple[int, int]) -> None:
    master, slave = pair
    term = FakeTerminal([b"guest login: "])

    async def scenario() -> sc.Session:
        with sc.raw_mode(slave):
            task = asyncio.ensure_future(sc.attach(term, slave, slave))
            await asyncio.sleep(0)
            assert b"guest login: " in await asyncio.to_thread(_read_until, master, b"login: ")
            # Ctrl-C is a key like any other in raw mode: it goes to the guest.
            os.write(master, b"root\r\x03")
            while term.sent != b"root\r\x03":
                await asyncio.sleep(0.01)
            os.write(master, b"\x1dnot this")
            return await asyncio.wait_for(task, 30)

    session = asyncio.run(scenario())
    assert session.reason == "escape"
    assert term.sent == b"root\r\x03"
    assert term.closed


def test_the_session_ends_when_the_host_side_does(pair: tuple[int, int]) -> None:
    _master, slave = pair
    term = FakeTerminal([b"bye\r\n"], end=True)
    session = asyncio.run(asyncio.wait_for(sc.attach(term, slave, slave), 30))
    assert session == sc.Session("remote", 0)


def test_the_window_size_follows_sigwinch(pair: tuple[int, int]) -> None:
    _master, slave = pair
    term = FakeTerminal([])

    async def scenario() -> None:
        task = asyncio.ensure_future(sc.attach(term, slave, slave))
        await asyncio.sleep(0)
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 42, 132, 0, 0))
        os.kill(os.getpid(), signal.SIGWINCH)
        while not term.sizes:
            await asyncio.sleep(0.01)
        task.cancel()

    asyncio.run(scenario())
    assert term.sizes[-1] == (132, 42)
    assert sc.window_size(slave) == (132, 42)


# --- the CLI, on the local transport with a stand-in virsh ------------------------------


@pytest.fixture
def fake_virsh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``virsh`` knowing one domain, vm1, shut off, whose serial log is ``vm1.log``."""
    log = tmp_path / "vm1.log"
    log.write_text("".join(f"boot line {n}\n" for n in range(1, 11)))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "virsh"
    script.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        for name; do :; done
        if [ "$name" != vm1 ]; then
            echo "error: failed to get domain '$name'" >&2; exit 1
        fi
        case " $* " in
        *" domstate "*) echo "shut off" ;;
        *" dumpxml "*) echo "<domain><devices><serial type='pty'><log file='{log}'/>\\
        </serial></devices></domain>" ;;
        *) exit 3 ;;
        esac
        """))
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    inv = tmp_path / "inv.ini"
    inv.write_text("[kvm]\nhv1 ansible_connection=local\n")
    return inv


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(["console", *args])
    out, err = capsys.readouterr()
    code = info.value.code
    return (code if isinstance(code, int) else 1), out, err


def test_tail_prints_the_last_lines_of_the_serial_log(
        fake_virsh: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _cli(capsys, "--tail", "3", "-i", str(fake_virsh), "hv1", "vm1")
    assert (code, err) == (0, "")
    assert out == "boot line 8\nboot line 9\nboot line 10\n"


def test_errors_name_the_host_and_instance_with_the_cli_exit_codes(
        fake_virsh: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = _cli(capsys, "-i", str(fake_virsh), "nohost", "vm1")
    assert code == 1 and "no host named 'nohost'" in err
    code, _out, err = _cli(capsys, "-i", str(fake_virsh), "hv1", "vm9")
    assert code == 2 and "host hv1: instance vm9: not defined" in err
    code, _out, err = _cli(capsys, "--tail", "5", "-i", str(fake_virsh), "hv1", "vm9")
    assert code == 2 and "instance vm9: not defined" in err
    code, _out, err = _cli(capsys, "-i", str(fake_virsh), "hv1", "vm1")
    assert code == 2 and "instance vm1: not running (state: shut off)" in err
    assert "Traceback" not in err


def test_attaching_needs_the_ssh_transport(
        fake_virsh: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = fake_virsh.parent / "bin" / "virsh"
    script.write_text(script.read_text().replace('echo "shut off"', "echo running"))
    code, _out, err = _cli(capsys, "-i", str(fake_virsh), "hv1", "vm1")
    assert code == 1 and "host hv1: the local transport has no interactive terminal" in err
