"""Configuration requests against the real server: bad input is a 422 naming the field,
oversized bodies a 413; a request with ``?wait`` answers with every host's result; jobs
are listed, read and cancelled."""

from __future__ import annotations

from typing import Any

import pytest
from service_helpers import Fleet, wait_for_job


def _post(fleet: Fleet, body: Any, **params: Any) -> Any:
    with fleet.server.client(fleet.operator) as client:
        return client.post("/v1/requests", json=body, params=params)


@pytest.mark.parametrize(("body", "loc", "words"), [
    ({"template": "no_such", "target": "h1"}, ["body", "template"], "not found"),
    ({"template": "../../etc/passwd", "target": "h1"}, ["body", "template"], "pattern"),
    ({"template": "steps3", "target": "h1", "vars": {"seconds": "soon"}},
     ["body", "vars", "seconds"], "integer"),
    ({"template": "steps3", "target": "h1", "vars": {"seconds": 9999}},
     ["body", "vars", "seconds"], "600"),
    ({"template": "steps3", "target": "h1", "vars": {"ansible_connection": "ssh"}},
     ["body", "vars", "ansible_connection"], "not a param"),
    ({"template": "instance_like", "target": "h1"}, ["body", "vars", "name"], "required"),
    ({"template": "steps3", "target": "nowhere*"}, ["body", "target"], "matches no host"),
    ({"template": "steps3", "target": "localhost"}, ["body", "target"], "not in the inv"),
    ({"template": "steps3", "target": "kvm:&"}, ["body", "target"], ""),
    # ansible would read these as '~' alone: every host.
    ({"template": "steps3", "target": "~["}, ["body", "target"], "'[' without ']'"),
    ({"template": "steps3", "target": "~h("}, ["body", "target"], "Invalid host list"),
    ({"template": "steps3", "target": "h1[1:2:3]"}, ["body", "target"], "bad subscript"),
    ({"template": "steps3"}, ["body", "target"], "required"),
    ({"template": "steps3", "target": {"placement": {"vcpus": 1}}},
     ["body", "target", "PlacementTarget", "placement", "memory_mib"], ""),
    ({"template": "steps3", "target": "h1", "surprise": 1}, ["body", "surprise"], ""),
])
def test_bad_requests_are_422_naming_the_field(fleet: Fleet, body: dict[str, Any],
                                               loc: list[str], words: str) -> None:
    response = _post(fleet, body)
    assert response.status_code == 422, response.text
    details = response.json()["detail"]
    assert any(d["loc"][: len(loc)] == loc for d in details), details
    assert any(words in d["msg"] for d in details), details


def test_malformed_json_is_422(fleet: Fleet) -> None:
    with fleet.server.client(fleet.operator) as client:
        response = client.post("/v1/requests", content=b"{not json",
                                headers={"content-type": "application/json"})
    assert response.status_code == 422


def test_oversized_bodies_are_413(fleet: Fleet) -> None:
    big = {"template": "steps3", "target": "h1", "vars": {"x": "a" * (2 * 1024 * 1024)}}
    assert _post(fleet, big).status_code == 413

    def chunks() -> Any:  # no Content-Length: counted as it arrives
        for _ in range(40):
            yield b"a" * 65536

    with fleet.server.client(fleet.operator) as client:
        response = client.post("/v1/requests", content=chunks(),
                               headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_wait_answers_with_the_final_result_of_every_host(fleet: Fleet) -> None:
    response = _post(fleet, {"template": "steps3", "target": "h1:h2"}, wait=30)
    assert response.status_code == 200, response.text
    job = response.json()
    assert job["state"] == "succeeded" and job["exit_code"] == 0
    assert job["who"] == "api:ops" and job["pattern"] == "h1:h2"
    assert [h["host"] for h in job["hosts"]] == ["h1", "h2"]
    for host in job["hosts"]:
        assert host["state"] == "ok"
        assert [s["name"] for s in host["steps"]] == ["hello", "sleep", "bye"]
        assert host["steps"][0]["stdout"] == "hello\n"
        assert host["counts"]["changed"] == 3


def test_without_wait_the_job_is_accepted_then_read(fleet: Fleet) -> None:
    response = _post(fleet, {"template": "steps3", "target": "h3", "vars": {"seconds": 1}})
    assert response.status_code == 202
    accepted = response.json()
    assert accepted["url"] == f"/v1/jobs/{accepted['job_id']}"
    with fleet.server.client(fleet.reader) as client:
        job = wait_for_job(client, accepted["job_id"], ("succeeded", "failed"))
        assert job["state"] == "succeeded"
        listed = client.get("/v1/jobs", params={"state": "succeeded"}).json()["jobs"]
        assert accepted["job_id"] in [j["id"] for j in listed]
        assert client.get("/v1/jobs", params={"state": "bogus"}).status_code == 422
        assert client.get("/v1/jobs/999999").status_code == 404


def test_a_running_job_is_cancelled(fleet: Fleet) -> None:
    response = _post(fleet, {"template": "steps3", "target": "h1", "vars": {"seconds": 30}})
    job_id = response.json()["job_id"]
    with fleet.server.client(fleet.operator) as client:
        wait_for_job(client, job_id, ("running",))
        cancelled = client.post(f"/v1/jobs/{job_id}/cancel")
        assert cancelled.status_code == 202 and cancelled.json()["cancel_requested"]
        job = wait_for_job(client, job_id, ("cancelled",), timeout=20)
        assert job["state"] == "cancelled"
        assert job["finished_at"] - job["started_at"] < 20  # not the 30 s sleep
        assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 409
        assert client.post("/v1/jobs/999999/cancel").status_code == 404


def test_check_mode_is_recorded(fleet: Fleet) -> None:
    response = _post(fleet, {"template": "steps3", "target": "h2", "check": True}, wait=30)
    assert response.status_code == 200
    assert response.json()["check"] is True
