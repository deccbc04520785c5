"""Unit tests of the runner's policies: batches, exit codes, when a run stops."""

from __future__ import annotations

import pytest

from control_server.errors import InputError
from control_server.events import HostFinished, StepCounts
from control_server.runner import RunOptions, _should_stop, batches, exit_code_for


def _h(status: str) -> HostFinished:
    return HostFinished("h", status, StepCounts(), 0.0)


@pytest.mark.parametrize(
    ("count", "serial", "expected"),
    [
        (5, None, [5]),
        (5, "2", [2, 2, 1]),
        (10, "30%", [3, 3, 3, 1]),
        (3, "10%", [1, 1, 1]),  # at least one host per batch
        (3, "10", [3]),
        (0, "2", []),
    ],
)
def test_batches(count: int, serial: str | None, expected: list[int]) -> None:
    assert batches(count, serial) == expected


def test_bad_serial_names_the_flag() -> None:
    with pytest.raises(InputError, match="--serial 'x'"):
        batches(3, "x")


@pytest.mark.parametrize(
    ("statuses", "code"),
    [
        (["ok", "ok"], 0),
        (["ok", "failed"], 2),
        (["ok", "unreachable"], 4),
        (["unreachable", "failed"], 2),  # 2 wins if both, as in Ansible
        (["ok", "skipped"], 0),
    ],
)
def test_exit_codes(statuses: list[str], code: int) -> None:
    assert exit_code_for([_h(s) for s in statuses]) == code


def test_max_fail_percentage_is_exceeded_not_reached() -> None:
    opts = RunOptions(max_fail_percentage=50)
    assert _should_stop([_h("failed"), _h("ok")], opts) is None
    stop = _should_stop([_h("failed"), _h("unreachable"), _h("ok")], opts)
    assert stop is not None and "67% > --max-fail-percentage 50" in stop


def test_a_serial_batch_where_every_host_failed_stops() -> None:
    assert _should_stop([_h("failed")], RunOptions(serial="1")) is not None
    assert _should_stop([_h("failed")], RunOptions()) is None
