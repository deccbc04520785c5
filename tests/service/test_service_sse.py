"""Server-Sent Events: a job's events live and in order, resumed from Last-Event-ID; the
host event stream."""

from __future__ import annotations

import time
from typing import Any

import httpx
from service_helpers import Fleet, sse_events


def _start(fleet: Fleet, seconds: int) -> int:
    with fleet.server.client(fleet.operator) as client:
        response = client.post("/v1/requests", json={
            "template": "steps3", "target": "h1:h2", "vars": {"seconds": seconds}})
    assert response.status_code == 202, response.text
    return int(response.json()["job_id"])


def _read(client: httpx.Client, job_id: int, headers: dict[str, str] | None = None,
          stop_after: int | None = None) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    with client.stream("GET", f"/v1/jobs/{job_id}/events", headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for event in sse_events(response.iter_lines()):
            got.append(event)
            if stop_after is not None and len(got) == stop_after:
                break
    return got


def test_a_job_streams_live_in_order_to_its_end(fleet: Fleet) -> None:
    job_id = _start(fleet, 2)
    started = time.monotonic()
    with fleet.server.client(fleet.reader) as client:
        events = _read(client, job_id)
        took = time.monotonic() - started
        job = client.get(f"/v1/jobs/{job_id}").json()
    seqs = [int(e["id"]) for e in events]
    assert seqs == list(range(1, len(seqs) + 1)) and seqs[-1] == job["last_seq"]
    assert [e["data"]["seq"] for e in events] == seqs
    kinds = [e["event"] for e in events]
    assert kinds[0] == "job_state" and events[0]["data"]["payload"]["state"] == "queued"
    assert kinds[-1] == "job_state" and events[-1]["data"]["payload"]["state"] == "succeeded"
    assert {"run_start", "host_start", "executor", "host_end", "run_end"} <= set(kinds)
    assert took >= 1.5  # it followed the job live, and ended with it
    for host in ("h1", "h2"):
        steps = [e["data"]["payload"]["event"] for e in events
                 if e["event"] == "executor" and e["data"]["host"] == host]
        ends = [s["name"] for s in steps if s["event"] == "step_end"]
        assert ends == ["hello", "sleep", "bye"]


def test_a_stream_resumes_after_last_event_id(fleet: Fleet) -> None:
    job_id = _start(fleet, 1)
    with fleet.server.client(fleet.reader) as client:
        first = _read(client, job_id, stop_after=4)
        last_id = first[-1]["id"]
        rest = _read(client, job_id, headers={"Last-Event-ID": last_id})
        everything = _read(client, job_id)
        after = client.get(f"/v1/jobs/{job_id}/events", params={"after": len(everything)})
        bad = client.get(f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": "x"})
    assert [e["id"] for e in first + rest] == [e["id"] for e in everything]
    assert int(rest[0]["id"]) == int(last_id) + 1
    assert rest[-1]["data"]["payload"]["state"] == "succeeded"
    assert after.status_code == 200 and "data:" not in after.text  # nothing after the end
    assert bad.status_code == 422


def test_an_unknown_job_has_no_stream(fleet: Fleet) -> None:
    with fleet.server.client(fleet.reader) as client:
        assert client.get("/v1/jobs/999999/events").status_code == 404


def test_host_events_stream_reports_the_unreachable_host(fleet: Fleet) -> None:
    """The start-up facts gathering found 'dead' unreachable: a host event, streamed."""
    deadline = time.monotonic() + 30
    with fleet.server.client(fleet.reader, timeout=35) as client:
        hosts = {h["name"]: h for h in client.get("/v1/hosts").json()["hosts"]}
        with client.stream("GET", "/v1/events", params={"host": "dead"}) as response:
            for event in sse_events(response.iter_lines()):
                if event["event"] == "host_unreachable" or time.monotonic() > deadline:
                    break
    assert event["event"] == "host_unreachable"
    assert event["data"]["host"] == "dead" and "refused" in event["data"]["payload"]["error"]
    assert int(event["id"]) == event["data"]["id"]
    if hosts["dead"]["reachable"] is not None:
        assert hosts["dead"]["reachable"] is False
