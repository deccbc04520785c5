"""Running the executor as a subprocess, the way a host runs it (shared by the tests)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from host_executor import protocol

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Outcome:
    rc: int
    events: list[dict[str, Any]]
    stderr: str
    stdout: bytes = b""

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == kind]

    def one(self, kind: str) -> dict[str, Any]:
        found = self.of(kind)
        assert len(found) == 1, (kind, self.events)
        return found[0]

    @property
    def ends(self) -> list[dict[str, Any]]:
        return self.of("step_end")


def parse_events(stdout: bytes) -> list[dict[str, Any]]:
    return [protocol.decode_event(line) for line in stdout.splitlines() if line.strip()]


@dataclass
class Executor:
    """How to start the executor: as a module or as the built zipapp, with its own cache."""

    cache: Path
    zipapp: Path | None = None
    # HOSTPLANE_TEST_EXECUTOR_PYTHON runs the executor under another interpreter (3.8...).
    python: str = os.environ.get("HOSTPLANE_TEST_EXECUTOR_PYTHON") or sys.executable
    extra_env: dict[str, str] = field(default_factory=dict)

    def argv(self, args: Sequence[str] = ()) -> list[str]:
        if self.zipapp is not None:
            return [self.python, str(self.zipapp), *args]
        return [self.python, "-m", "host_executor", *args]

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ, HOSTPLANE_CACHE_DIR=str(self.cache))
        env.update(self.extra_env)
        env.update(extra or {})
        return env

    def run(
        self,
        request: dict[str, Any] | bytes,
        args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        timeout: float = 60,
        events: bool = True,
    ) -> Outcome:
        data = request if isinstance(request, bytes) else json.dumps(request).encode()
        proc = subprocess.run(
            self.argv(args), input=data, capture_output=True, env=self.env(env),
            timeout=timeout, cwd=str(REPO),
        )
        parsed = parse_events(proc.stdout) if events else []
        return Outcome(proc.returncode, parsed, proc.stderr.decode(), proc.stdout)

    def start(self, args: Sequence[str] = (), env: dict[str, str] | None = None) -> Running:
        proc = subprocess.Popen(
            self.argv(args), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=self.env(env), cwd=str(REPO),
        )
        return Running(proc)


class Running:
    """An executor in flight: send the request, read events as they come, interfere."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.events: list[dict[str, Any]] = []

    def send(self, request: dict[str, Any], close: bool = False) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(request).encode() + b"\n")
        self.proc.stdin.flush()
        if close:
            self.proc.stdin.close()

    def read_until(self, kind: str, timeout: float = 30) -> dict[str, Any]:
        assert self.proc.stdout is not None
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            line = self.proc.stdout.readline()
            if not line:
                break
            event = protocol.decode_event(line)
            self.events.append(event)
            if event["event"] == kind:
                return event
        raise AssertionError(f"no {kind} event; got {self.events}")

    def signal(self, signum: signal.Signals) -> None:
        self.proc.send_signal(signum)

    def finish(self, timeout: float = 30) -> tuple[int, str]:
        rc = self.proc.wait(timeout)
        assert self.proc.stderr is not None
        stderr = self.proc.stderr.read().decode()
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None and not pipe.closed:
                pipe.close()
        return rc, stderr


def request(steps: list[dict[str, Any]], rid: str | None = None, **kw: Any) -> dict[str, Any]:
    # A request id runs once per host: each request gets its own unless a test names it.
    return protocol.make_request(rid or f"req-{uuid.uuid4().hex[:12]}", steps, **kw)


def again(doc: dict[str, Any]) -> dict[str, Any]:
    """The same request as a new one (a request id never runs twice on a host)."""
    return dict(doc, id=f"req-{uuid.uuid4().hex[:12]}")


def step(name: str, action: str, **args: Any) -> dict[str, Any]:
    return {"name": name, "action": action, "args": args}


def processes_with_env(marker: str) -> list[int]:
    """PIDs whose argv or environment carries ``marker`` (every descendant of a step
    inherits its environment, so backgrounded grandchildren are found too)."""
    found = []
    needle = marker.encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        for part in ("cmdline", "environ"):
            try:
                with open(f"/proc/{entry}/{part}", "rb") as handle:
                    if needle in handle.read():
                        found.append(int(entry))
                        break
            except OSError:
                continue
    return found


def wait_gone(marker: str, timeout: float = 10) -> list[int]:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        pids = processes_with_env(marker)
        if not pids:
            return []
        time.sleep(0.05)
    return processes_with_env(marker)
