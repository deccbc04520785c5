"""Bearer tokens against the real server: 401 without a valid one, 403 for a reader who
writes; tokens stored hashed, revocable from the CLI."""

from __future__ import annotations

import sqlite3

import httpx
import pytest
from service_helpers import Fleet, cli, create_token

GETS = ["/v1/jobs", "/v1/jobs/1", "/v1/jobs/1/events", "/v1/hosts", "/v1/instances",
        "/v1/events"]
BODY = {"template": "steps3", "target": "h1"}


@pytest.mark.parametrize("path", GETS)
def test_reads_without_a_token_are_401(fleet: Fleet, path: str) -> None:
    response = httpx.get(fleet.server.url + path, timeout=10)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("header", [
    "Bearer hp_1_" + "x" * 43,  # a real id, a wrong secret
    "Bearer hp_999_" + "x" * 43,  # no such token
    "Bearer nonsense",
    "Basic dXNlcjpwYXNz",
    "Bearer",
])
def test_wrong_tokens_are_401(fleet: Fleet, header: str) -> None:
    response = httpx.get(fleet.server.url + "/v1/hosts", headers={"Authorization": header},
                         timeout=10)
    assert response.status_code == 401


def test_writes_without_a_token_are_401(fleet: Fleet) -> None:
    with fleet.server.client(None) as client:
        assert client.post("/v1/requests", json=BODY).status_code == 401
        assert client.post("/v1/jobs/1/cancel").status_code == 401


def test_a_reader_reads_but_may_not_post(fleet: Fleet) -> None:
    with fleet.server.client(fleet.reader) as client:
        assert client.get("/v1/hosts").status_code == 200
        refused = client.post("/v1/requests", json=BODY)
        assert refused.status_code == 403
        assert "operator" in refused.json()["detail"]
        assert client.post("/v1/jobs/1/cancel").status_code == 403
        jobs = client.get("/v1/jobs").json()["jobs"]
    assert all(job["who"] != "api:dash" for job in jobs)


def test_health_needs_no_token(fleet: Fleet) -> None:
    assert httpx.get(fleet.server.url + "/v1/health", timeout=10).json()["status"] == "ok"


def test_tokens_are_stored_hashed_listed_and_revoked(fleet: Fleet) -> None:
    db = fleet.server.db
    token = create_token(db, "short-lived", "reader")
    with fleet.server.client(token) as client:
        assert client.get("/v1/hosts").status_code == 200
        path = db.removeprefix("sqlite:///")
        with sqlite3.connect(path) as conn:
            stored = [row[0] for row in conn.execute("SELECT hash FROM tokens")]
        assert all(s.startswith("sha256$") for s in stored)
        assert not any(token.split("_", 2)[2] in s for s in stored)
        listed = cli("tokens", "list", "--db", db)
        assert "short-lived" in listed.stdout and token not in listed.stdout
        assert cli("tokens", "revoke", "short-lived", "--db", db).returncode == 0
        assert client.get("/v1/hosts").status_code == 401
