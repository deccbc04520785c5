"""The HTTP API takes vars as typed JSON (docs/http-api.md): a value of the wrong type for
its param is a 422 naming the field, the expected type and the template, against the real
server; the CLI's ``-e`` strings are still coerced (tests/templating covers that)."""

from __future__ import annotations

from typing import Any

import pytest
from service_helpers import Fleet

SECRET = "s3cr3t-value-never-shown"


def _post(fleet: Fleet, body: Any, **params: Any) -> Any:
    with fleet.server.client(fleet.operator) as client:
        return client.post("/v1/requests", json=body, params=params)


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("count", "256", "an integer"),
    ("count", 2.5, "an integer"),
    ("count", True, "an integer"),
    ("ratio", "0.5", "a number"),
    ("ratio", False, "a number"),
    ("flag", "yes", "a boolean"),
    ("flag", 1, "a boolean"),
    ("items", "a,b", "a list"),
    ("labels", '{"a": 1}', "a mapping"),
    ("labels", ["a"], "a mapping"),
    ("where", 7, "a string"),
    ("label", 12, "a string"),
    ("label", {"a": 1}, "a string"),
    ("token", [SECRET], "a string"),
])
def test_a_wrong_type_is_422_naming_field_type_and_template(
        fleet: Fleet, name: str, value: Any, expected: str) -> None:
    response = _post(fleet, {"template": "typed", "target": "h1", "vars": {name: value}})
    assert response.status_code == 422, response.text
    [detail] = response.json()["detail"]
    assert detail["loc"] == ["body", "vars", name]
    assert detail["type"] == "param_type"
    assert f"vars.{name}" in detail["msg"] and "template typed" in detail["msg"]
    assert f"expected {expected}" in detail["msg"], detail
    assert SECRET not in response.text


def test_a_string_for_a_shipped_int_param_is_refused(fleet: Fleet) -> None:
    """The case seen: resize_instance's memory_mib as "256" was accepted with a 202."""
    body = {"template": "resize_instance", "target": "h1",
            "vars": {"name": "vm1", "memory_mib": "256"}}
    response = _post(fleet, body)
    assert response.status_code == 422, response.text
    [detail] = response.json()["detail"]
    assert detail["loc"] == ["body", "vars", "memory_mib"]
    assert "template resize_instance" in detail["msg"] and "an integer" in detail["msg"]


def test_right_types_and_nulls_are_accepted(fleet: Fleet) -> None:
    vars_ = {"count": 3, "ratio": 2, "flag": False, "items": ["a"], "labels": {"k": "v"},
             "where": "/tmp", "label": "x", "token": SECRET}
    response = _post(fleet, {"template": "typed", "target": "h1", "vars": vars_}, wait=60)
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "succeeded", response.text
    nulls = {name: None for name in vars_}
    response = _post(fleet, {"template": "typed", "target": "h1", "vars": nulls}, wait=60)
    assert response.status_code == 200, response.text
