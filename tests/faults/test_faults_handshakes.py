"""Handshakes over a real sshd that drops them (``MaxStartups``): the limiter's per-sshd
window adapts so every host connects with default options; a port where nothing listens
still ends unreachable at once (never retried)."""

from __future__ import annotations

import json
import re
import subprocess
import time

from sshd_harness import LoopbackSSHD, free_port

HOSTS = 40


def _hostplane(server: LoopbackSSHD, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([".venv/bin/hostplane", *args], capture_output=True, text=True,
                          env=server.env(), timeout=180)


def _recaps(stdout: str) -> dict[str, dict[str, object]]:
    out = {}
    for line in stdout.splitlines():
        event = json.loads(line)
        if event.get("kind") == "host_end":
            out[event["host"]] = event
    return out


def test_dropped_handshakes_are_retried_until_every_host_connects(sshd_factory) -> None:  # type: ignore[no-untyped-def]
    server: LoopbackSSHD = sshd_factory(count=HOSTS, extra_config=["MaxStartups 3:100:3"])
    out = _hostplane(server, "exec", *server.cli_args(), "all", "--json", "--no-record",
                     "--", "true")
    recaps = _recaps(out.stdout)
    unreachable = sorted(h for h, r in recaps.items() if r["status"] != "ok")
    assert out.returncode == 0 and not unreachable, (unreachable, out.stderr[-2000:])
    assert len(recaps) == HOSTS
    # sshd did drop handshakes: without the adaptation this fan-out ends with hosts
    # unreachable (3-6 of 40 measured), so the test cannot pass trivially.
    dropped = re.findall(r"drop connection #\d+ .* past MaxStartups", server.log.read_text())
    assert dropped, "sshd never dropped a handshake: raise HOSTS or lower MaxStartups"


def test_nothing_listening_is_unreachable_at_once(sshd_factory) -> None:  # type: ignore[no-untyped-def]
    server: LoopbackSSHD = sshd_factory(count=1)
    address = server.address(0)
    closed = free_port(address)
    server.inventory.write_text(
        f"[nodes]\nghost ansible_host={address} ansible_port={closed} ansible_user=root "
        f"ansible_ssh_private_key_file={server.client_key}\n")
    started = time.monotonic()
    out = _hostplane(server, "exec", *server.cli_args(), "all", "--json", "--no-record",
                     "--", "true")
    elapsed = time.monotonic() - started
    recap = _recaps(out.stdout)["ghost"]
    assert out.returncode == 4, out.stderr
    assert recap["status"] == "unreachable" and recap["error_kind"] == "connect", recap
    assert "refused" in str(recap["error"]) and "retries" not in str(recap["error"])
    assert elapsed < 15, elapsed  # refused is final: no retry, no backoff
