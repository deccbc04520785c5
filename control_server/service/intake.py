"""``POST /v1/requests``: check a configuration request, pick its hosts, start its job.

Everything is checked before a job exists: the template (by name only: it never names a
file outside the template folders), the vars (only the template's params, each of its
JSON type; values are checked by the render of every host), the target (a pattern
matching inventory hosts, or a placement that fits a host).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from typing import Any

from control_server import api, jobs
from control_server.errors import InputError
from control_server.params import strict_type_error
from control_server.placement import Instance, PlacementDecision, PlacementRequest, place
from control_server.service.context import Service
from control_server.service.errors import RequestInvalid, from_input_error
from control_server.service.models import ConfigurationRequest, PlacementSpec
from control_server.template_usage import suggest
from control_server.templating import TemplateInfo, shared_library

PLACEMENT_EVENT = "placement"
FACTS_WAIT = 60.0  # a placement right after start-up waits for the first facts this long


class NoHostFits(Exception):
    def __init__(self, decision: PlacementDecision) -> None:
        super().__init__(decision.reason)
        self.decision = decision


def template_info(service: Service, name: str) -> TemplateInfo:
    try:
        return shared_library(service.config.run.templates_dirs).get(name)
    except InputError as exc:
        raise from_input_error(exc) from None


def check_vars(info: TemplateInfo, values: dict[str, Any]) -> None:
    """Only the template's params (inventory vars such as ``libvirt_uri`` are the
    inventory's to set, not a caller's), each of its JSON type: ``"256"`` is no int."""
    specs = {spec.name: spec for spec in info.params}
    for name, value in values.items():
        if name not in specs:
            known = ", ".join(sorted(specs)) or "none"
            raise RequestInvalid(["body", "vars", name],
                                 f"{name!r} is not a param of template {info.name}"
                                 f"{suggest(name, specs)} (params: {known})", "unknown_param")
        wrong = strict_type_error(specs[name], value)
        if wrong is not None:
            raise RequestInvalid(["body", "vars", name],
                                 f"vars.{name}: template {info.name}'s param {name} is "
                                 f"{specs[name].type}: {wrong}", "param_type")


def resolve_pattern(service: Service, pattern: str) -> str:
    try:
        hosts = service.inventory.hosts(pattern)
    except InputError as exc:
        raise RequestInvalid(["body", "target"], str(exc), "pattern") from None
    if not hosts:
        raise RequestInvalid(["body", "target"],
                             f"host pattern {pattern!r} matches no host of the inventory",
                             "no_match")
    implicit = [h.name for h in hosts if h.implicit]
    if implicit:
        # Ansible's implicit localhost would be the control server itself.
        raise RequestInvalid(["body", "target"],
                             f"{', '.join(implicit)} is not in the inventory", "no_match")
    return pattern


async def choose_host(service: Service, spec: PlacementSpec
                      ) -> tuple[PlacementDecision, int]:
    """The placement decision and the reservation holding its capacity (sync from the
    decision to the reservation: two requests never count on the same free memory)."""
    runner = service.runner
    if not runner.facts_ready.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(runner.facts_ready.wait(), FACTS_WAIT)
    request = PlacementRequest(spec.memory_mib, spec.vcpus, tuple(spec.tags), spec.tenant,
                               spec.dedicated)
    decision = place(service.state.host_states(), request)
    if decision.host is None:
        raise NoHostFits(decision)
    key = service.state.reserve(decision.host, Instance("(placing)", spec.memory_mib,
                                                        spec.vcpus))
    return decision, key


def _with_placement(info: TemplateInfo, values: dict[str, Any], spec: PlacementSpec
                    ) -> dict[str, Any]:
    """What placement reserved is what the instance gets, unless the caller says."""
    params = {p.name for p in info.params}
    filled = dict(values)
    for name, value in (("memory_mib", spec.memory_mib), ("vcpus", spec.vcpus)):
        if name in params and name not in filled:
            filled[name] = value
    return filled


async def submit(service: Service, body: ConfigurationRequest, who: str
                 ) -> tuple[int, asyncio.Task[None]]:
    """Create and start the job; its id and task. ``RequestInvalid`` / ``NoHostFits``."""
    info = template_info(service, body.template)
    check_vars(info, body.vars)
    values = dict(body.vars)
    decision: PlacementDecision | None = None
    reservation: int | None = None
    if isinstance(body.target, str):
        pattern = resolve_pattern(service, body.target)
    else:
        spec = body.target.placement
        decision, reservation = await choose_host(service, spec)
        assert decision.host is not None
        pattern = decision.host
        values = _with_placement(info, values, spec)
    run = service.config.run
    config = replace(run, options=replace(run.options, check=body.check))
    request = jobs.JobRequest(pattern, api.TemplateTask(body.template), values, config,
                              service.config.inventory_sources, service.config.cwd, who)
    try:
        prepared = await asyncio.to_thread(jobs.prepare_job, service.store, request,
                                           service.inventory, service.pool)
        if decision is not None and not isinstance(body.target, str):
            note = {**decision.as_dict(), "request": body.target.placement.model_dump()}
            await asyncio.to_thread(service.store.record_note, prepared.id,
                                    PLACEMENT_EVENT, note)
    except InputError as exc:
        service.state.release(reservation)
        raise from_input_error(exc) from None
    except BaseException:
        service.state.release(reservation)
        raise
    return prepared.id, service.runner.start(prepared, reservation)
