"""The library API the CLI (and the HTTP API, and the tests) call: typed and async.

    result = await run(inventory, "kvm:&rack3", TemplateTask("launch_instance"),
                       {"name": "vm42"}, RunConfig())

Everything is rendered and validated for every host before anything is sent.
"""

from __future__ import annotations

import shlex
import sys
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from control_server import executor_bundle
from control_server.delivery import Delivery
from control_server.events import EventStream, Sink
from control_server.inventory import Host, Inventory, connection_target
from control_server.runner import HostPlan, RunOptions, RunResult, execute
from control_server.sequence import Sequence, adhoc_sequence, build_request
from control_server.transport import (
    HandshakeLimiter,
    Transport,
    TransportSettings,
    open_transport,
)

if TYPE_CHECKING:
    from control_server.templating import TemplateLibrary
    from control_server.transport.pool import TransportPool


@dataclass(frozen=True)
class TemplateTask:
    """Run a command template by name."""

    name: str


@dataclass(frozen=True)
class AdhocTask:
    """Run one command on every host (``hostplane exec``): argv, or a shell line."""

    argv: tuple[str, ...]
    shell: bool = False
    timeout: float | None = None


Task = TemplateTask | AdhocTask


@dataclass(frozen=True)
class RunConfig:
    options: RunOptions = field(default_factory=RunOptions)
    transport: TransportSettings = field(default_factory=TransportSettings)
    transport_override: str | None = None  # --transport
    templates_dirs: tuple[Path, ...] = ()
    limit: str | None = None
    become: bool | None = None  # None: the inventory's ansible_become
    deadline_margin: float = 0.0


def _render(
    task: Task, host: Host, extra_vars: Mapping[str, Any], library: TemplateLibrary | None
) -> Sequence:
    if isinstance(task, AdhocTask):
        seq = adhoc_sequence(list(task.argv), host.name, shell=task.shell)
        if task.timeout is not None:
            for step in seq.steps:
                step["timeout"] = task.timeout
        return seq
    assert library is not None
    variables = {**host.vars, **extra_vars}
    return library.render(task.name, variables, host.name)


def plan_hosts(
    hosts: Iterable[Host],
    task: Task,
    extra_vars: Mapping[str, Any],
    config: RunConfig,
    pool: TransportPool | None = None,
) -> list[HostPlan]:
    """Render, validate and prepare every host. Raises an InputError before any connection.

    With ``pool`` (serve), each host's transport is a handle on the pool's connection to
    it; without, a connection of the run's own, closed at its end (the CLI)."""
    library: TemplateLibrary | None = None
    if isinstance(task, TemplateTask):  # Jinja2 loads only for a template
        from control_server.templating import shared_library

        library = shared_library(config.templates_dirs)
    bundle = executor_bundle.build_bundle()
    limiter = HandshakeLimiter(config.transport.handshake_limit, config.transport.handshake_retries)
    opts = config.options
    deadline = time.time() + opts.timeout if opts.timeout else None
    plans: list[HostPlan] = []
    for host in hosts:
        seq = _render(task, host, extra_vars, library)
        request = build_request(seq, uuid.uuid4().hex, check=opts.check, diff=opts.diff,
                                deadline=deadline, on_disconnect=opts.on_disconnect)
        transport, delivery = host_connection(host, config, bundle, limiter, pool)
        plans.append(HostPlan(host.name, transport, delivery, request, seq.redact))
    return plans


def host_connection(
    host: Host,
    config: RunConfig,
    bundle: executor_bundle.Bundle,
    limiter: HandshakeLimiter,
    pool: TransportPool | None = None,
) -> tuple[Transport, Delivery]:
    """How to reach one host (its transport, not yet connected) and start its executor."""
    target = connection_target(host)
    become = target.become if config.become is None else config.become
    python = target.python
    if target.connection == "local" and "ansible_python_interpreter" not in host.vars:
        python = sys.executable  # known present, and no shim or PATH lookup on the way
    delivery = Delivery(bundle, python=python, become=become, become_user=target.become_user)
    if pool is not None:
        return pool.transport(target, host.vars, config.transport,
                              config.transport_override), delivery
    return open_transport(target, host.vars, config.transport, limiter,
                          config.transport_override), delivery


def describe(task: Task) -> str:
    if isinstance(task, TemplateTask):
        return task.name
    return task.argv[0] if task.shell else shlex.join(task.argv)


async def execute_plans(
    plans: list[HostPlan], config: RunConfig, sinks: Iterable[Sink] = (), what: str = ""
) -> RunResult:
    return await execute(plans, config.options, EventStream(sinks), what)


async def fetch_journal(
    host: Host, request_id: str, settings: TransportSettings | None = None
) -> list[dict[str, Any]]:
    """Read back the events a host journaled for ``request_id`` (after a lost connection)."""
    target = connection_target(host)
    settings = settings or TransportSettings()
    limiter = HandshakeLimiter(settings.handshake_limit, settings.handshake_retries)
    transport = open_transport(target, host.vars, settings, limiter)
    delivery = Delivery(executor_bundle.build_bundle(), python=target.python,
                        become=target.become, become_user=target.become_user)
    try:
        await transport.connect()
        return await delivery.fetch_journal(transport, request_id)
    finally:
        await transport.close()


async def run(
    inventory: Inventory,
    pattern: str,
    task: Task,
    extra_vars: Mapping[str, Any],
    config: RunConfig | None = None,
    sinks: Iterable[Sink] = (),
) -> RunResult:
    """Run ``task`` on every host matching ``pattern`` (narrowed by ``config.limit``)."""
    config = config or RunConfig()
    hosts = inventory.hosts(pattern, config.limit)
    plans = plan_hosts(hosts, task, extra_vars, config)
    return await execute(plans, config.options, EventStream(sinks), describe(task))
