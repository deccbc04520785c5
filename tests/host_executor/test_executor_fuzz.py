"""Whatever JSON arrives, request validation either accepts it or raises BadRequest:
never another exception (which would be a traceback on the host)."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from executor_harness import REPO, parse_events
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from host_executor import protocol, request
from host_executor.errors import BadRequest

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)

VALID = protocol.make_request(
    "fuzz",
    [
        {"name": "c", "action": "command", "args": {"argv": ["true"], "rc": [0, 1], "env": {"A": "b"}}},
        {"name": "s", "action": "shell", "args": {"cmd": "true", "unless": ["false"]},
         "undo": {"action": "file", "args": {"path": "/tmp/x", "state": "absent"}}},
        {"name": "f", "action": "file", "args": {"path": "/tmp/x", "content": "a", "mode": "0644"}},
        {"name": "w", "action": "wait", "args": {"path": "/tmp/x", "pattern": "a", "timeout": 1}},
        {"name": "g", "action": "facts", "args": {"gather": ["kvm"]}},
    ],
    lock={"name": "l", "timeout": 1},
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


def _replace(doc: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    doc = copy.deepcopy(doc)
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = new
    return doc


def _validates_or_bad_request(doc: Any) -> None:
    try:
        request.validate(doc)
    except BadRequest as exc:
        assert exc.message


def test_the_valid_request_is_valid() -> None:
    request.validate(VALID)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_random_documents(doc: Any) -> None:
    _validates_or_bad_request(doc)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(_paths(VALID)), json_values)
def test_one_field_replaced(path: tuple[Any, ...], new: Any) -> None:
    _validates_or_bad_request(_replace(VALID, path, new))


# --- the same, end to end: random bytes into `python3 -m host_executor` -----------------
# Exit 0-3 with JSON event lines, never a traceback (not even inside an event's data).

# What Python's json reads but a validator may forget: NaN, Infinity, NUL, lone
# surrogates, bools for ints, ids out of range, empty names.
_salt = st.sampled_from([float("nan"), float("inf"), -float("inf"), True, "a\x00b", "\ud800",
                         "/tmp/\x00", 2**70, -1, "", [], {}])
# Mostly salt (one_of picks a branch evenly): few examples must still find a bad field.
_odd_values = st.one_of(
    _salt, _salt, st.lists(_salt, min_size=1, max_size=3),
    st.dictionaries(st.sampled_from(["A", "", "A=B", "\x00", "\udc80"]),
                    _salt | st.text(max_size=3), min_size=1, max_size=2),
    json_values,
)


def _run_executor(data: bytes, cache: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "host_executor"], input=data, capture_output=True, timeout=30,
        cwd=str(REPO), env=dict(os.environ, HOSTPLANE_CACHE_DIR=str(cache), PATH=str(cache)),
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode in (0, 1, 2, 3), (proc.returncode, output[-2000:])
    assert b"Traceback" not in output, output[-4000:]
    events = parse_events(proc.stdout)  # every line an event
    assert events and events[-1]["event"] in ("done", "error"), events


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-cache")


_e2e = settings(max_examples=int(os.environ.get("HOSTPLANE_FUZZ_EXAMPLES", 40)), deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@_e2e
@given(st.binary(max_size=64) | json_values.map(lambda v: json.dumps(v).encode()))
def test_random_stdin_end_to_end(cache: Path, data: bytes) -> None:
    _run_executor(data, cache)


@_e2e
@given(st.sampled_from(_paths(VALID)), _odd_values)
def test_one_field_replaced_end_to_end(cache: Path, path: tuple[Any, ...], new: Any) -> None:
    # Check mode, an empty PATH, files under the cache: nothing a replaced field names runs.
    doc = _replace(dict(VALID, check=True, id=uuid.uuid4().hex), path, new)
    text = json.dumps(doc).replace('"/tmp/x"', json.dumps(str(cache / "x")))
    _run_executor(text.encode(), cache)


# Not in check mode, so the command really starts: only its own fields vary (no file or
# wait step whose replaced path could name a real file), and PATH holds no programs.
RUNS = protocol.make_request(
    "runs", [{"name": "c", "action": "command", "timeout": 5,
              "args": {"argv": ["true", "x"], "env": {"A": "b"}, "cwd": "/", "stdin": "in",
                       "rc": [0, 127]}}],
)


@_e2e
@given(st.sampled_from([p for p in _paths(RUNS) if p[:1] == ("steps",)]), _odd_values)
def test_one_command_field_replaced_and_run(cache: Path, path: tuple[Any, ...], new: Any) -> None:
    doc = _replace(dict(RUNS, id=uuid.uuid4().hex), path, new)
    _run_executor(json.dumps(doc).encode(), cache)
