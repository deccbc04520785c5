"""``hostplane image push|list|remove`` over a real sshd: once per content, a cut upload
resumed from the bytes the host has, never a half image under the final name."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from sshd_harness import LoopbackSSHD

from control_server import images
from control_server.api import RunConfig
from control_server.inventory import Inventory
from control_server.transport import TransportSettings

HOSTPLANE = ".venv/bin/hostplane"
QEMU_IMG = shutil.which("qemu-img")


def _image(path: Path, size: int) -> Path:
    path.write_bytes(os.urandom(size))
    return path


def _inventory(server: LoopbackSSHD, extra: str = "") -> None:
    """Each loopback "host" is this machine: give each its own image folder."""
    lines = [f"{h} image_dir={server.root / h / 'base'} pool_path={server.root / h / 'disks'}"
             for h in server.hosts]
    server.inventory.write_text("[nodes]\n" + "\n".join(lines) + "\n" + extra)


def _cli(server: LoopbackSSHD, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HOSTPLANE, "image", *args, *server.cli_args()],
                          capture_output=True, text=True, env=server.env(), timeout=120)


def _ends(stdout: str) -> dict[str, dict[str, Any]]:
    return {e["host"]: e for e in map(json.loads, stdout.splitlines()) if e["kind"] == "host_end"}


def test_push_once_per_content_then_list_and_remove(sshd_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server = sshd_factory(count=2)
    _inventory(server)
    src = _image(tmp_path / "tiny.raw", 3 << 20)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    checked = _cli(server, "push", str(src), "--name", "tiny", "all", "--check")
    assert checked.returncode == 0 and "would upload 3145728 bytes" in checked.stdout
    assert not list(server.root.glob("node*/base/**/sha256-*"))
    first = _cli(server, "push", str(src), "--name", "tiny", "all")
    assert first.returncode == 0, first.stderr
    assert "100% of 3.0 MiB" in first.stderr and "uploaded (3.0 MiB sent), verified" in first.stdout
    for host in server.hosts:
        stored = server.root / host / "base" / f"sha256-{digest}.raw"
        assert stored.read_bytes() == src.read_bytes()
        assert (server.root / host / "base" / "names" / "tiny").resolve() == stored
        assert list((server.root / host / "base" / ".partial").iterdir()) == []
    again = _cli(server, "push", str(src), "--name", "tiny", "all", "--json")
    assert again.returncode == 0, again.stderr
    ends = _ends(again.stdout)
    assert {e["status"] for e in ends.values()} == {"skipped"}
    assert all(e["sent"] == 0 for e in ends.values())
    listed = _cli(server, "list", "all", "--json")
    assert listed.returncode == 0, listed.stderr
    for end in _ends(listed.stdout).values():
        assert [(i["name"], i["digest"], i["size"]) for i in end["data"]["images"]] == \
            [("tiny", digest, 3 << 20)]
    table = _cli(server, "list", "node01")
    assert "tiny" in table.stdout and f"sha256:{digest[:12]}" in table.stdout
    removed = _cli(server, "remove", "tiny", "all")
    assert removed.returncode == 0, removed.stderr
    assert not list((server.root / "node01" / "base").glob("sha256-*"))


@pytest.mark.skipif(QEMU_IMG is None, reason="needs qemu-img (scripts/bootstrap.sh installs qemu-utils)")
def test_remove_is_refused_while_an_instance_uses_it(sshd_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server = sshd_factory(count=1)
    _inventory(server)
    assert QEMU_IMG is not None
    src = tmp_path / "base.qcow2"
    subprocess.run([QEMU_IMG, "create", "-q", "-f", "qcow2", str(src), "32M"], check=True)
    assert _cli(server, "push", str(src), "--name", "deb", "all").returncode == 0
    disks = server.root / "node01" / "disks"
    disks.mkdir()
    backing = (server.root / "node01" / "base" / "names" / "deb").resolve()
    subprocess.run([QEMU_IMG, "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(backing),
                    str(disks / "vm42.qcow2"), "1G"], check=True)
    refused = _cli(server, "remove", "deb", "all")
    assert refused.returncode == 2
    assert "in use by instance vm42" in refused.stderr and "node01" in refused.stderr
    assert backing.exists()


def test_an_unreachable_host_exits_4(sshd_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server = sshd_factory(count=1)
    _inventory(server, "[gone]\nghost ansible_host=127.0.0.1 ansible_port=1\n")
    src = _image(tmp_path / "x.raw", 1024)
    done = _cli(server, "push", str(src), "--name", "x", "ghost")
    assert done.returncode == 4 and "ghost: UNREACHABLE" in done.stderr


class _Cutter:
    """Kills the sshd sessions once the upload is past ``at`` bytes, ``times`` times."""

    def __init__(self, server: LoopbackSSHD, at: int, times: int = 1) -> None:
        self.server, self.at, self.left = server, at, times
        self.events: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        if event["kind"] == "image_progress" and self.left and event["sent"] >= self.at:
            self.left -= 1
            pids = self.server.session_pids()
            assert pids
            for pid in pids:
                os.kill(pid, signal.SIGKILL)


def _push(server: LoopbackSSHD, src: Path, report: images.Report,
          transport: str = "ssh") -> images.HostOutcome:
    inventory = Inventory.load([str(server.inventory)])
    config = RunConfig(transport=TransportSettings(known_hosts=server.known_hosts,
                                                   ssh_config=server.ssh_config),
                       transport_override=transport)
    image = images.inspect_image(src, "big")
    [outcome] = asyncio.run(images.push(inventory.hosts("node01"), config, image, report))
    return outcome


@pytest.mark.parametrize("transport", ["ssh", "paramiko"])
def test_a_cut_upload_resumes_on_a_fresh_connection(sshd_factory, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                    transport: str) -> None:
    server = sshd_factory(count=1)
    _inventory(server)
    src = _image(tmp_path / "big.raw", 48 << 20)
    cutter = _Cutter(server, at=4 << 20)
    outcome = _push(server, src, cutter, transport)
    assert outcome.status == "uploaded", outcome.message
    retries = [e for e in cutter.events if e["kind"] == "image_retry"]
    assert len(retries) == 1
    resumed = [e["offset"] for e in cutter.events if e["kind"] == "image_progress"]
    assert resumed[0] == 0 and resumed[-1] > 0  # the second channel appended, from the cut
    assert outcome.sent >= 48 << 20  # bytes sent over both connections
    stored = next((server.root / "node01" / "base").glob("sha256-*.raw"))
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == images.inspect_image(src, "b").digest


def test_a_push_that_gives_up_leaves_only_a_partial_and_the_next_resumes(  # type: ignore[no-untyped-def]
        sshd_factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = sshd_factory(count=1)
    _inventory(server)
    src = _image(tmp_path / "big.raw", 48 << 20)
    monkeypatch.setattr(images, "RESUME_DELAYS", ())
    cut = _push(server, src, _Cutter(server, at=4 << 20))
    assert cut.status == "unreachable" and "connection lost" in cut.message
    base = server.root / "node01" / "base"
    assert not list(base.glob("sha256-*"))  # nothing under the final name
    [partial] = list((base / ".partial").iterdir())
    had = partial.stat().st_size
    assert 0 < had < 48 << 20
    outcome = _push(server, src, lambda _e: None)
    assert outcome.status == "uploaded" and outcome.resumed_from == had
    assert outcome.sent == (48 << 20) - outcome.resumed_from
    assert next(base.glob("sha256-*.raw")).read_bytes() == src.read_bytes()


@pytest.mark.parametrize("transport", ["ssh", "paramiko"])
def test_a_command_that_stops_reading_reports_its_status(sshd_factory, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                         transport: str) -> None:
    from control_server.api import host_connection
    from control_server.executor_bundle import build_bundle
    from control_server.transport import HandshakeLimiter

    server = sshd_factory(count=1)
    src = _image(tmp_path / "big.raw", 32 << 20)  # far more than the channel's window
    [host] = Inventory.load([str(server.inventory)]).hosts("node01")
    config = RunConfig(transport=TransportSettings(known_hosts=server.known_hosts,
                                                   ssh_config=server.ssh_config),
                       transport_override=transport)

    async def send() -> Any:
        conn, _ = host_connection(host, config, build_bundle(), HandshakeLimiter(2, 1))
        try:
            return await asyncio.wait_for(
                conn.send_file("echo moved >&2; exit 76", src), 60)
        finally:
            await conn.close()

    result = asyncio.run(send())
    assert result.exit_status == 76 and result.stderr.strip() == b"moved"
