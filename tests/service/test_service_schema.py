"""The OpenAPI document: the one in the repo is the one served, and schemathesis finds no
server error (nor a response off the document) in requests generated from it.

Regenerate docs/openapi.json with ``UPDATE_OPENAPI=1 pytest tests/service -k openapi``."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from service_helpers import (
    Fleet,
    create_token,
    free_port,
    start_server,
    write_inventory,
    write_templates,
)

from control_server.service.openapi import REPO_FILE, current


def test_the_repo_document_is_the_apps() -> None:
    text = current()
    if os.environ.get("UPDATE_OPENAPI"):
        REPO_FILE.write_text(text, encoding="utf-8")
    assert REPO_FILE.read_text(encoding="utf-8") == text, (
        "docs/openapi.json is out of date: UPDATE_OPENAPI=1 pytest tests/service -k openapi")


def test_the_served_document_is_the_repos(fleet: Fleet) -> None:
    served = httpx.get(fleet.server.url + "/openapi.json", timeout=10).json()
    assert served == json.loads(REPO_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A server of its own: generated cancels and requests never touch other tests' jobs."""
    workdir = tmp_path_factory.mktemp("fuzz")
    db = f"sqlite:///{workdir / 'hostplane.db'}"
    token = create_token(db, "fuzz", "operator")
    server = start_server(workdir, write_inventory(workdir / "hosts.ini", free_port()), db,
                          "--templates", str(write_templates(workdir / "templates")))
    try:
        yield server.url, token
    finally:
        server.stop()


# Loaded from the repo's document, which the tests above prove is the one served: the
# operations must be known when pytest collects them, before any server runs (and
# schemathesis' fixture-based loader does not work with this pytest). Unknown query
# parameters are ignored, as HTTP APIs do; they are not generated.
CONFIG = schemathesis.Config.from_dict({"generation": {"allow-extra-parameters": False}})
schema = schemathesis.openapi.from_path(str(REPO_FILE), config=CONFIG).exclude(
    path="/v1/events")  # the host event stream never ends, by design: nothing to fuzz
TOKEN: dict[str, str] = {}


@schema.auth()
class _Bearer:
    """The operator token of the fuzzed server (known once its fixture ran). Registered
    as auth, schemathesis also checks that requests without it are refused."""

    def get(self, case: Any, ctx: Any) -> str:
        return TOKEN.get("operator", "")  # asked at collection too, before the server

    def set(self, case: Any, data: str, ctx: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck),
          derandomize=True)
def test_generated_requests_get_no_server_error(case: Any, fuzzed: tuple[str, str]) -> None:
    url, TOKEN["operator"] = fuzzed
    # A request can be valid by the document and still name a template or host that does
    # not exist: that is a 422 naming the field, by design, not an "accepted" 2xx.
    case.call_and_validate(base_url=url, timeout=30,
                           excluded_checks=[schemathesis.checks.positive_data_acceptance])
