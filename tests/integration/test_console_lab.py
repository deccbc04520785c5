"""``hostplane console`` (issue 11 §4) on real QEMU (TCG) in the libvirt lab, through a real
terminal: tmux runs the command in a pane, the test types into it and reads the screen."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from test_libvirt_lab import MARKER, guest, instance, lab, prepared

from control_server.lab import Lab

pytestmark = [pytest.mark.lab, pytest.mark.libvirt]
__all__ = ["guest", "instance", "lab", "prepared"]  # fixtures, imported for pytest to find

HOSTPLANE = [sys.executable, "-m", "control_server"]
PING = "hostplane-console-ping"


def _until(what: str, probe: Callable[[], str], wanted: str, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while True:
        seen = probe()
        if wanted in seen:
            return seen
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: no {wanted!r} in:\n{seen}")
        time.sleep(0.5)


@pytest.fixture
def tmux() -> Iterator[Callable[..., str]]:
    """``tmux(*args)`` on a server of this test's own (its own socket), killed after."""
    if shutil.which("tmux") is None:
        pytest.skip("needs tmux (scripts/bootstrap.sh installs it)")
    socket = f"hp-console-{uuid.uuid4().hex[:6]}"

    def run(*args: str) -> str:
        return subprocess.run(["tmux", "-L", socket, *args], capture_output=True, text=True,
                              timeout=30, check=True).stdout

    yield run
    subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True, check=False)


def test_console_attaches_in_a_terminal_and_the_log_keeps_the_output(
        prepared: Lab, instance: tuple[str, str], tmux: Callable[..., str]) -> None:
    host, name = instance
    base = [*HOSTPLANE, "console", "-b", "-i", str(prepared.inventory), host, name]
    def tail(lines: int) -> str:
        done = subprocess.run([*base[:4], "--tail", str(lines), *base[4:]],
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout

    boot = tail(5000)
    assert MARKER in boot and "Linux version" in boot  # the guest's boot, from its first line
    # The guest may still print (e.g. its link coming up): compare --tail 3 with whole
    # reads taken just before and after it, once the log held still between them.
    for _ in range(20):
        before, last, after = tail(5000), tail(3), tail(5000)
        if before == after:
            break
        time.sleep(0.5)
    assert before == after, "the serial log never held still for a second"
    assert last.splitlines() == after.splitlines()[-3:]

    shell = f"{shlex.join(base)}; echo console-exit=$?; sleep 600"
    tmux("new-session", "-d", "-s", "c", "-x", "120", "-y", "40", shell)

    def screen() -> str:
        return tmux("capture-pane", "-p", "-t", "c", "-S", "-100")

    _until("attaching", screen, f"Connected to {name} on {host}")
    tmux("send-keys", "-t", "c", "Enter")
    # Raw mode: nothing is echoed locally, so the text on screen is the guest's tty echo.
    tmux("send-keys", "-t", "c", "-l", PING)
    tmux("send-keys", "-t", "c", "Enter")
    _until("the guest's echo", screen, PING)
    tmux("send-keys", "-t", "c", "C-]")
    _until("leaving with ^]", screen, "console-exit=0")

    assert PING in tail(20)  # the serial log went on while attached


def test_console_errors(prepared: Lab) -> None:
    host = prepared.hosts[0].name
    done = subprocess.run([*HOSTPLANE, "console", "-b", "-i", str(prepared.inventory), host,
                           "no-such-vm"], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 2, done
    assert f"host {host}: instance no-such-vm: not defined" in done.stderr
