"""Param coercion and checks, as Ansible coerces ``-e`` strings."""

from __future__ import annotations

from typing import Any

import pytest

from control_server.errors import ParamError
from control_server.params import ParamSpec, check_value, resolve_params


@pytest.mark.parametrize(
    ("kind", "given", "expected"),
    [
        ("int", "3", 3),
        ("int", " -4 ", -4),
        ("int", 5.0, 5),
        ("float", "2.5", 2.5),
        ("float", 2, 2.0),
        ("bool", "yes", True),
        ("bool", "Off", False),
        ("bool", "1", True),
        ("bool", 0, False),
        ("str", 42, "42"),
        ("list", "cpu, memory,", ["cpu", "memory"]),
        ("list", '["a", 1]', ["a", 1]),
        ("list", ("a",), ["a"]),
        ("dict", '{"a": 1}', {"a": 1}),
        ("path", "/var/lib/x", "/var/lib/x"),
    ],
)
def test_coercion(kind: str, given: Any, expected: Any) -> None:
    value = check_value(ParamSpec("p", type=kind), given)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize(
    ("kind", "given", "expected"),
    [
        ("int", "3.5", "expected an integer, got '3.5'"),
        ("int", 2.5, "expected an integer, got 2.5"),
        ("float", "nan", "expected a number, got 'nan'"),
        ("bool", "maybe", "expected a boolean (true/false/yes/no/on/off/1/0), got 'maybe'"),
        ("str", {"a": 1}, "expected a string, got {'a': 1}"),
        ("list", "[1,", "expected a list; the value is not a valid JSON list"),
        ("dict", "a=1", "expected a mapping (or a JSON object), got 'a=1'"),
        ("path", "relative/x", "expected an absolute path, got 'relative/x'"),
    ],
)
def test_bad_values(kind: str, given: Any, expected: str) -> None:
    with pytest.raises(ParamError) as info:
        check_value(ParamSpec("p", type=kind), given)
    assert info.value.param == "p" and info.value.expected == expected


def test_pattern_is_a_full_match() -> None:
    spec = ParamSpec("name", pattern="[a-z]+")
    assert check_value(spec, "abc") == "abc"
    with pytest.raises(ParamError, match="matching the pattern"):
        check_value(spec, "abc-1")


def test_choices_apply_to_list_items() -> None:
    spec = ParamSpec("gather", type="list", choices=("cpu", "memory"))
    assert check_value(spec, "cpu") == ["cpu"]
    with pytest.raises(ParamError, match="expected one of cpu, memory, got 'disk'"):
        check_value(spec, "cpu,disk")


def test_defaults_and_missing() -> None:
    specs = (
        ParamSpec("a", type="int", default=3),
        ParamSpec("b"),
        ParamSpec("c", type="list", default=[1]),
        ParamSpec("d", required=True),
    )
    values = resolve_params(specs, {"d": "x", "unrelated": 1})
    assert values == {"a": 3, "b": None, "c": [1], "d": "x"}
    values["c"].append(2)
    assert resolve_params(specs, {"d": "x"})["c"] == [1]  # defaults are copied
    with pytest.raises(ParamError, match="param 'd': required param is missing"):
        resolve_params(specs, {"d": None}, template="t")


def test_secret_value_hidden_in_errors() -> None:
    with pytest.raises(ParamError) as info:
        check_value(ParamSpec("pw", type="int", secret=True), "hunter2")
    assert "hunter2" not in str(info.value)
