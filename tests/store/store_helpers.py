"""Shared helpers of the job store tests (tests import this, never ``conftest``)."""

from __future__ import annotations

import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from control_server.cli import main

T = TypeVar("T")

SECRET = "s3cr3t-hunter2"

TEMPLATES = {
    "slow": """\
        {#
        description: sleeps unless the marker exists, then says done
        params:
          marker: {required: true}
        #}
        steps:
          - name: wait a while
            shell: {cmd: "sleep 30", creates: "{{ marker }}"}
          - name: say done
            command: {argv: [echo, done]}
        """,
    "secretive": """\
        {#
        description: writes a secret to a file, then prints it
        params:
          token: {required: true, secret: true}
          path: {required: true}
        #}
        steps:
          - name: write it
            file: {path: "{{ path }}", content: "token={{ token }}"}
          - name: show it
            shell: {cmd: "cat {{ path }}; echo; echo {{ token | b64encode }}"}
        """,
    "two_steps": """\
        {#
        description: two quick steps
        params: {}
        #}
        steps:
          - name: first
            command: {argv: [echo, one]}
          - name: second
            command: {argv: [echo, two]}
        """,
}


def write_templates(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in TEMPLATES.items():
        (folder / f"{name}.yaml.j2").write_text(textwrap.dedent(text))
    return folder


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``hostplane ARGS`` in-process: (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as info:
        main(list(args))
        raise SystemExit(0)
    out, err = capsys.readouterr()
    code = info.value.code
    return (code if isinstance(code, int) else 1), out, err


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 60.0,
             interval: float = 0.1) -> T:
    """Poll ``probe`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


def executor_events(events: list[Any], host: str | None = None) -> list[dict[str, Any]]:
    """The executor's own events (``hello``, ``step_start`` ...) among stored events."""
    return [e.payload["event"] for e in events
            if e.kind == "executor" and (host is None or e.host == host)]
