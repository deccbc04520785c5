"""Golden runs: each ``golden/*.json`` holds a request and the exact events it must produce
(normalized: durations, pids, paths of the test's temp folder).

``HOSTPLANE_UPDATE_GOLDEN=1 pytest tests/host_executor/test_executor_golden.py`` rewrites
the expected events from what the executor does now; review the diff before committing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from executor_harness import Executor

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(GOLDEN.glob("*.json"))
UPDATE = os.environ.get("HOSTPLANE_UPDATE_GOLDEN") == "1"

# Values that differ from run to run or host to host.
VOLATILE = {"duration": "<duration>", "pid": "<pid>", "python": "<python>",
            "digest": "<digest>", "journal": "<journal>", "elapsed": "<elapsed>"}


def _substitute(value: Any, old: str, new: str) -> Any:
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, list):
        return [_substitute(v, old, new) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, old, new) for k, v in value.items()}
    return value


def normalize(value: Any) -> Any:
    if isinstance(value, list):
        return [normalize(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: VOLATILE[k] if k in VOLATILE and value[k] is not None else normalize(v)
           for k, v in value.items()}
    if out.get("action") == "facts" and isinstance(out.get("data"), dict):
        # Facts differ per host: the golden pins which groups come back.
        out["data"] = {group: "<fact>" for group in sorted(out["data"])}
    return out


def _setup(tmp: Path, case: dict[str, Any]) -> None:
    for name, content in case.get("files", {}).items():
        path = Path(name.replace("{tmp}", str(tmp)))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        path.chmod(0o644)  # whatever the umask: goldens pin mode changes


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_golden(path: Path, executor: Executor, tmp_path: Path) -> None:
    case = json.loads(path.read_text())
    work = tmp_path / "work"
    work.mkdir()
    _setup(work, case)
    req = _substitute(case["request"], "{tmp}", str(work))
    runs = case.get("runs", 1)  # >1: the same request again, e.g. to pin idempotency
    events: list[dict[str, Any]] = []
    rcs = []
    for run in range(runs):
        # A request id runs once per host: each run again is a new request.
        out = executor.run(dict(req, id=f"{req['id']}-{run}") if run else req)
        assert "Traceback" not in out.stderr
        events += out.events
        rcs.append(out.rc)
    got = normalize(_substitute(events, str(work), "{tmp}"))
    if UPDATE:
        case["events"], case["exit"] = got, rcs
        path.write_text(json.dumps(case, indent=2) + "\n")
        return
    assert rcs == case["exit"]
    assert got == case["events"]


def test_every_action_has_a_golden() -> None:
    from host_executor.actions import ACTIONS

    used = set()
    for path in CASES:
        for step in json.loads(path.read_text())["request"].get("steps", []):
            used.add(step["action"])
    assert set(ACTIONS) <= used
