"""Whatever JSON arrives, request validation either accepts it or raises BadRequest:
never another exception (which would be a traceback on the host)."""

from __future__ import annotations

import copy
from typing import Any

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
