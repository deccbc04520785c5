"""The FastAPI application of ``hostplane serve`` (the routes; the work is elsewhere)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Header, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from control_server import __version__
from control_server.service import intake, openapi, sse, views
from control_server.service.auth import Operator, Reader, service_of
from control_server.service.context import MAX_BODY, Service
from control_server.service.errors import Failed, RequestInvalid, failing_as
from control_server.service.limits import BodyLimit
from control_server.service.models import (
    MAX_ID,
    Accepted,
    CancelResult,
    ConfigurationRequest,
    Failure,
    Health,
    HostEventData,
    HostList,
    InstanceList,
    JobDetail,
    JobEvent,
    JobList,
    Message,
    PlacementRejected,
    ValidationFailed,
)
from control_server.store import capacity
from control_server.store.records import JOB_STATES

JobId = Annotated[int, Path(ge=1, le=MAX_ID, description="The job's id.")]
LastEventId = Annotated[str, Header(
    alias="Last-Event-ID", pattern=r"^\s*[0-9]{0,18}\s*$",
    description="Resume after this event id (what an EventSource sends on reconnect).")]
After = Annotated[int, Query(ge=0, le=MAX_ID, description="Resume after this event id "
                                                          "(Last-Event-ID wins).")]
HostName = Annotated[str | None, Query(max_length=255, description="Only this host.")]

Responses = dict[int | str, dict[str, Any]]
log = logging.getLogger("hostplane.serve")
# What the routes raise on purpose, answered 4xx by their handlers; anything else is Failed.
TYPED: tuple[type[Exception], ...] = (RequestInvalid, HTTPException, intake.NoHostFits)


def _json(model: type[Any], description: str) -> dict[str, Any]:
    # Spelled out: a streaming route's errors are JSON all the same (a model alone would
    # be documented with the route's own media type).
    schema = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


AUTH: Responses = {401: _json(Message, "No token, or not a valid one")}
WRITE: Responses = {**AUTH, 403: _json(Message, "A reader's token")}
INVALID: Responses = {422: _json(ValidationFailed, "Bad input, naming the field")}
NOT_FOUND: Responses = {404: _json(Message, "No such job")}


def _stream_doc(data: type[Any], what: str) -> Responses:
    """An event stream; before OpenAPI 3.2 (``itemSchema``), ``schema`` is one event."""
    event = {"type": "object", "properties": {
        "id": {"type": "string", "description": what},
        "event": {"type": "string", "description": "The event's kind."},
        "data": {"type": "string", "contentMediaType": "application/json",
                 "contentSchema": {"$ref": f"#/components/schemas/{data.__name__}"}},
        "retry": {"type": "integer"}}}
    return {200: {"description": "Server-Sent Events, one JSON document per event",
                  "content": {sse.MEDIA_TYPE: {"schema": event}}}}


class EventStreamResponse(StreamingResponse):
    media_type = sse.MEDIA_TYPE


def _stream(events: AsyncIterator[str]) -> EventStreamResponse:
    return EventStreamResponse(events, headers={"Cache-Control": "no-cache",
                                                "X-Accel-Buffering": "no"})


def _resume_point(header: str, after: int) -> int:
    try:
        from_header = sse.parse_last_id(header)
    except ValueError as exc:
        raise RequestInvalid(["header", "Last-Event-ID"], str(exc)) from None
    return from_header if header.strip() else after


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    service: Service | None = app.state.service
    if service is not None:
        await service.start()
    try:
        yield
    finally:
        if service is not None:
            await service.stop()


def create_app(service: Service | None = None) -> FastAPI:
    """The app; without a service it only serves its OpenAPI document (``openapi.py``)."""
    app = FastAPI(title="hostplane", version=__version__, lifespan=_lifespan,
                  description="Configuration requests, jobs and their events, hosts and "
                              "instances of a hostplane control server. See docs/http-api.md.")
    app.state.service = service
    limit = service.config.max_body if service is not None else MAX_BODY
    app.add_middleware(BodyLimit, limit=limit)

    @app.exception_handler(RequestInvalid)
    async def invalid(_request: Request, exc: RequestInvalid) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=422)

    @app.exception_handler(intake.NoHostFits)
    async def no_host(_request: Request, exc: intake.NoHostFits) -> JSONResponse:
        body = PlacementRejected(detail=exc.decision.reason, excluded=exc.decision.excluded,
                                 placement=exc.decision.as_dict())
        return JSONResponse(body.model_dump(), status_code=409)

    @app.exception_handler(Failed)
    async def failed(_request: Request, exc: Failed) -> JSONResponse:
        return _failure(exc)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Starlette answers this one from its outermost middleware, then re-raises it
        # for uvicorn to log: the answer is still JSON saying what failed.
        return _failure(Failed(f"answering {request.method} {request.url.path}", exc))

    _routes(app)
    openapi.install(app)
    return app


def _failure(exc: Failed) -> JSONResponse:
    log.error("%s", exc, exc_info=exc.cause)
    headers = {"Retry-After": "1"} if exc.status == 503 else None
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)


def _target(body: ConfigurationRequest) -> str:
    if isinstance(body.target, str):
        return f"host pattern {body.target!r}"
    return f"a placement of {body.target.placement.memory_mib} MiB"


def _routes(app: FastAPI) -> None:
    @app.get("/v1/health", tags=["server"])
    async def health(request: Request) -> Health:
        """Whether the server is up (no token needed)."""
        service: Service | None = request.app.state.service
        ready = service is not None and service.runner.facts_ready.is_set()
        return Health(status="ok", version=__version__, facts_ready=ready)

    @app.post("/v1/requests", status_code=202, tags=["jobs"], response_model=None,
              responses={200: _json(JobDetail, "The job ended in time"),
                         202: _json(Accepted, "The job runs"),
                         409: _json(PlacementRejected, "No host fits"),
                         413: _json(Message, "Body too large"),
                         500: _json(Failure, "A bug (its traceback is in serve's log)"),
                         503: _json(Failure, "The job store is busy: retry"),
                         **WRITE, **INVALID})
    async def post_request(
        request: Request, body: ConfigurationRequest, who: Operator,
        wait: Annotated[float, Query(ge=0, le=3600, allow_inf_nan=False, description=(
            "Answer with the final result if the job ends within this many seconds."))] = 0,
    ) -> JSONResponse:
        """Run a command template on a host pattern, or on the host placement picks."""
        service = service_of(request)
        with failing_as(f"starting template {body.template} on {_target(body)} (the job "
                        "did not start)", TYPED):
            job_id, task = await intake.submit(service, body, f"api:{who.name}")
        if wait > 0:
            await asyncio.wait({task}, timeout=wait)
        if task.done():
            with failing_as(f"reading the result of job {job_id} (the job is not affected: "
                            f"GET /v1/jobs/{job_id})", TYPED, job_id):
                detail = await asyncio.to_thread(views.job_detail, service.store, job_id)
            if detail is not None:
                return JSONResponse(detail.model_dump(mode="json"), status_code=200)
        url = f"/v1/jobs/{job_id}"
        accepted = Accepted(job_id=job_id, state="running", url=url,
                            events_url=url + "/events")
        return JSONResponse(accepted.model_dump(), status_code=202)

    @app.get("/v1/jobs", tags=["jobs"], responses={**AUTH, **INVALID})
    async def list_jobs(
        request: Request, _who: Reader,
        state: Annotated[Literal[JOB_STATES] | None, Query()] = None,  # type: ignore[valid-type]
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> JobList:
        """The newest jobs first."""
        store = service_of(request).store
        records = await asyncio.to_thread(store.list_jobs, state, limit)
        return JobList(jobs=[views.job_summary(r) for r in records])

    @app.get("/v1/jobs/{job_id}", tags=["jobs"], responses={**AUTH, **NOT_FOUND, **INVALID})
    async def get_job(request: Request, job_id: JobId, _who: Reader) -> JobDetail:
        """The job, with each host's result and step results."""
        detail = await asyncio.to_thread(views.job_detail, service_of(request).store, job_id)
        if detail is None:
            raise HTTPException(404, f"no job {job_id}")
        return detail

    @app.get("/v1/jobs/{job_id}/events", tags=["jobs"], response_class=EventStreamResponse,
             responses={**_stream_doc(JobEvent, "The event's seq in the job"), **AUTH,
                        **NOT_FOUND, **INVALID})
    async def job_events(request: Request, job_id: JobId, _who: Reader,
                         last_event_id: LastEventId = "", after: After = 0
                         ) -> EventStreamResponse:
        """The job's events in order, live until the job ends; resumable."""
        service = service_of(request)
        start = _resume_point(last_event_id, after)
        job = await asyncio.to_thread(service.store.get_job, job_id)
        if job is None:
            raise HTTPException(404, f"no job {job_id}")
        return _stream(sse.job_stream(service.store, service.bus, job_id, job.state, start))

    @app.post("/v1/jobs/{job_id}/cancel", status_code=202, tags=["jobs"],
              responses={**WRITE, **NOT_FOUND, **INVALID,
                         409: _json(Message, "The job is not running")})
    async def cancel_job(request: Request, job_id: JobId, _who: Operator) -> CancelResult:
        """Stop a queued or running job (it ends ``cancelled``)."""
        service = service_of(request)
        job = await asyncio.to_thread(service.store.get_job, job_id)
        if job is None:
            raise HTTPException(404, f"no job {job_id}")
        if not service.runner.cancel(job_id):
            raise HTTPException(409, f"job {job_id} is {job.state}: nothing to cancel")
        return CancelResult(job_id=job_id, state=job.state, cancel_requested=True)

    @app.get("/v1/hosts", tags=["fleet"], responses={**AUTH})
    async def hosts(request: Request, _who: Reader) -> HostList:
        """The inventory's hosts: last facts, reachable or not, last seen, capacity."""
        service = service_of(request)
        names = [h.name for h in service.inventory.hosts("all")]
        held = await asyncio.to_thread(capacity.usage, service.store.engine, names)
        return HostList(hosts=views.host_infos(service.state, held))

    @app.get("/v1/instances", tags=["fleet"], responses={**AUTH, **INVALID})
    async def instances(request: Request, _who: Reader, host: HostName = None
                        ) -> InstanceList:
        """Every domain known on every host, with its state."""
        known = service_of(request).state.instances.values()
        return InstanceList(instances=[views.instance_info(i) for i in sorted(
            known, key=lambda i: (i.host, i.name)) if host is None or i.host == host])

    @app.get("/v1/events", tags=["fleet"], response_class=EventStreamResponse,
             responses={**_stream_doc(HostEventData, "The host event's id"), **AUTH,
                        **INVALID})
    async def host_events(request: Request, _who: Reader, last_event_id: LastEventId = "",
                          after: After = 0, host: HostName = None) -> EventStreamResponse:
        """Host events (instance state changes, hosts lost and found), live; resumable."""
        service = service_of(request)
        start = _resume_point(last_event_id, after)
        return _stream(sse.host_event_stream(service.host_events, service.bus, start, host))
