"""Golden runs of the libvirt actions on libvirt's test driver: ``golden/libvirt/*.json``
holds a request and the exact events it must produce, normalized (durations, pids, UUIDs,
MACs, snapshots' creation times, the test's temp folder).

``HOSTPLANE_UPDATE_GOLDEN=1 pytest tests/host_executor/test_libvirt_golden.py`` rewrites
the expected events; review the diff before committing.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from executor_harness import Executor
from libvirt_harness import SYSTEM_PYTHON, needs_libvirt
from test_executor_golden import _substitute, normalize

pytestmark = needs_libvirt
GOLDEN = Path(__file__).parent / "golden" / "libvirt"
CASES = sorted(GOLDEN.glob("*.json"))
UPDATE = os.environ.get("HOSTPLANE_UPDATE_GOLDEN") == "1"
_UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
_MAC = re.compile(r"\b52:54:00(:[0-9a-f]{2}){3}\b")
_SECONDS = re.compile(r"\b[0-9]+\.[0-9] s\b")


def _volatile(value: Any) -> Any:
    """Generated UUIDs and MACs, numbered in order of appearance (equal ones stay equal);
    seconds in messages."""
    seen: dict[str, str] = {}
    counts = {"uuid": 0, "mac": 0}

    def label(kind: str) -> Any:
        def name(match: re.Match[str]) -> str:
            if match.group(0) not in seen:
                counts[kind] += 1
                seen[match.group(0)] = f"<{kind}{counts[kind]}>"
            return seen[match.group(0)]
        return name

    def walk(v: Any) -> Any:
        if isinstance(v, str):
            v = _SECONDS.sub("<seconds> s", v)
            return _MAC.sub(label("mac"), _UUID.sub(label("uuid"), v))
        if isinstance(v, list):
            return [walk(x) for x in v]
        if isinstance(v, dict):
            return {k: "<time>" if k == "creation_time" and x else walk(x) for k, x in v.items()}
        return v

    return walk(value)


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_libvirt_golden(path: Path, tmp_path: Path) -> None:
    case = json.loads(path.read_text())
    work = tmp_path / "work"
    work.mkdir()
    executor = Executor(tmp_path / "cache", python=SYSTEM_PYTHON)
    out = executor.run(_substitute(case["request"], "{tmp}", str(work)))
    assert "Traceback" not in out.stderr
    got = _volatile(normalize(_substitute(out.events, str(work), "{tmp}")))
    if UPDATE:
        case["events"], case["exit"] = got, out.rc
        path.write_text(json.dumps(case, indent=2) + "\n")
        return
    assert out.rc == case["exit"]
    assert got == case["events"]
