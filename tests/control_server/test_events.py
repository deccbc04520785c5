"""event_to_dict gives exactly what dataclasses.asdict gives, and shares no mutable value."""

from __future__ import annotations

import dataclasses

from control_server.events import (
    ExecutorEvent,
    HostFinished,
    HostStarted,
    RunFinished,
    RunStarted,
    StepCounts,
    event_to_dict,
)

END = HostFinished("web1", "failed", StepCounts(ok=1, changed=2, failed=1), 1.25,
                   error="boom", error_kind="step",
                   failed_steps=({"name": "s", "data": {"rc": 2}},), executor_rc=2)
EVENTS = [
    RunStarted("abc", "deploy", ("web1", "web2"), check=False),
    HostStarted("web1"),
    ExecutorEvent("web1", {"kind": "step_end", "step": 0,
                           "data": {"stdout": "x", "lines": [1, [2, {"a": None}]]},
                           "flags": (True, 1.5)}),
    END,
    RunFinished("abc", (END, END), 2.5, 2, stopped_early="max fail"),
]


def test_same_as_asdict() -> None:
    for event in EVENTS:
        out = event_to_dict(event)
        assert out == dataclasses.asdict(event)
        assert [type(v) for v in out.values()] == \
            [type(v) for v in dataclasses.asdict(event).values()]


def test_no_shared_mutable_values() -> None:
    payload: dict[str, object] = {"data": {"lines": [1, 2]}}
    out = event_to_dict(ExecutorEvent("web1", payload))
    out["event"]["data"]["lines"].append(3)
    assert payload == {"data": {"lines": [1, 2]}}
