"""``Transport.send_file``: a file streamed from an offset into a command's stdin, with
progress; a command that stops reading is reported by its exit status, not as a lost
connection. (The asyncssh and paramiko forms, with a cut connection, are in
tests/faults/test_faults_images.py.)"""

from __future__ import annotations

import asyncio
import os
import shlex
from pathlib import Path

from control_server.inventory import ConnectionTarget
from control_server.transport import TransportSettings
from control_server.transport.base import SEND_CHUNK
from control_server.transport.local import LocalTransport

TARGET = ConnectionTarget("l1", "l1", None, None, None, "local", "python3", False, None)


def test_local_send_file_appends_from_the_offset(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.write_bytes(os.urandom(3 * SEND_CHUNK + 7))
    dest = tmp_path / "dest"
    dest.write_bytes(src.read_bytes()[:1000])
    seen: list[int] = []
    result = asyncio.run(LocalTransport(TARGET, TransportSettings()).send_file(
        f"cat >> {shlex.quote(str(dest))}", src, 1000, seen.append))
    assert result.exit_status == 0
    assert dest.read_bytes() == src.read_bytes()
    assert seen == sorted(seen) and seen[-1] == src.stat().st_size - 1000 and len(seen) == 3


def test_a_command_that_stops_reading_reports_its_status(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.write_bytes(os.urandom(64 * SEND_CHUNK))  # more than a pipe holds
    result = asyncio.run(LocalTransport(TARGET, TransportSettings()).send_file(
        "echo refused >&2; exit 76", src))
    assert result.exit_status == 76 and result.stderr.strip() == b"refused"
