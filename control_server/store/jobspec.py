"""What a job stores about its run, and how it is turned back into a run (``resume``).

The task, run options, inventory sources and template folders are stored as JSON; the
extra vars too, with every ``secret: true`` param's value (and any copy of it inside
another var) replaced by ``********``: a secret is never written to the database, so
``jobs resume`` asks for it again.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from control_server import api
from control_server.errors import InputError
from control_server.params import MASK
from control_server.runner import HostPlan, RunOptions
from control_server.sequence import redact, secret_strings
from control_server.store.records import JobRecord, NewJob
from control_server.transport import TransportSettings


@dataclass(frozen=True)
class JobRequest:
    """What to run, and what is needed to run it again (``resume``)."""

    pattern: str
    task: api.Task
    extra_vars: Mapping[str, Any] = field(default_factory=dict)
    config: api.RunConfig = field(default_factory=api.RunConfig)
    inventory_sources: tuple[str, ...] = ()  # as given; resolved against ``cwd``
    cwd: Path | None = None
    who: str = ""


def current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"





def task_to_dict(task: api.Task) -> dict[str, Any]:
    if isinstance(task, api.TemplateTask):
        return {"kind": "template", "name": task.name}
    return {"kind": "adhoc", "argv": list(task.argv), "shell": task.shell,
            "timeout": task.timeout}


def task_from_dict(data: Mapping[str, Any]) -> api.Task:
    if data.get("kind") == "template":
        return api.TemplateTask(str(data["name"]))
    return api.AdhocTask(tuple(data.get("argv") or ()), bool(data.get("shell")),
                         data.get("timeout"))


def config_to_dict(config: api.RunConfig) -> dict[str, Any]:
    data = asdict(config)
    data["templates_dirs"] = [str(Path(d).resolve()) for d in config.templates_dirs]
    transport = data["transport"]
    for key in ("known_hosts", "ssh_config"):
        if transport[key] is not None:
            transport[key] = str(Path(transport[key]).expanduser().resolve())
    transport["extra_known_hosts"] = [str(p) for p in config.transport.extra_known_hosts]
    return data


def config_from_dict(data: Mapping[str, Any]) -> api.RunConfig:
    transport = dict(data.get("transport") or {})
    for key in ("known_hosts", "ssh_config"):
        if transport.get(key) is not None:
            transport[key] = Path(transport[key])
    transport["extra_known_hosts"] = tuple(Path(p) for p in
                                           transport.get("extra_known_hosts") or ())
    return api.RunConfig(
        options=RunOptions(**(data.get("options") or {})),
        transport=TransportSettings(**transport),
        transport_override=data.get("transport_override"),
        templates_dirs=tuple(Path(p) for p in data.get("templates_dirs") or ()),
        limit=data.get("limit"),
        become=data.get("become"),
        deadline_margin=float(data.get("deadline_margin") or 0.0),
    )


def secret_params(task: api.Task, templates_dirs: Iterable[Path]) -> list[str]:
    """The names of the task's ``secret: true`` params (none for an ad hoc command)."""
    if not isinstance(task, api.TemplateTask):
        return []
    from control_server.templating import shared_library  # Jinja2: only for a template

    info = shared_library(list(templates_dirs)).get(task.name)
    return [spec.name for spec in info.params if spec.secret]


def redacted_vars(task: api.Task, extra_vars: Mapping[str, Any],
                  templates_dirs: Iterable[Path]) -> dict[str, Any]:
    """The extra vars as stored: a secret param's value is ``********``, and so is any
    copy of it inside another var."""
    if not isinstance(task, api.TemplateTask):
        return dict(extra_vars)
    from control_server.templating import shared_library

    specs = shared_library(list(templates_dirs)).get(task.name).params
    hidden = redact(dict(extra_vars), secret_strings(specs, extra_vars))
    secret = {spec.name for spec in specs if spec.secret}
    return {k: (MASK if k in secret else v) for k, v in hidden.items()}


def new_job(request: JobRequest, plans: list[HostPlan]) -> NewJob:
    config = request.config
    cwd = Path(request.cwd or Path.cwd()).resolve()
    return NewJob(
        kind="template" if isinstance(request.task, api.TemplateTask) else "adhoc",
        what=api.describe(request.task),
        pattern=request.pattern,
        hosts=tuple((p.host, str(p.request.get("id") or "") or None) for p in plans),
        who=request.who or current_user(),
        limit=config.limit,
        check=config.options.check,
        vars=redacted_vars(request.task, request.extra_vars, config.templates_dirs),
        task=task_to_dict(request.task),
        config=config_to_dict(config),
        inventory={"sources": list(request.inventory_sources), "cwd": str(cwd)},
    )


def request_from_job(job: JobRecord, extra_vars: Mapping[str, Any] | None = None) -> JobRequest:
    """The stored job as a request again; ``extra_vars`` win (they bring back secrets).

    An ``InputError`` names every secret that was not stored and not given again.
    """
    task = task_from_dict(job.task)
    config = config_from_dict(job.config)
    merged = {**job.vars, **(extra_vars or {})}
    missing = [name for name in secret_params(task, config.templates_dirs)
               if merged.get(name) == MASK]
    if missing:
        given = " ".join(f"-e {name}=..." for name in missing)
        raise InputError(f"job {job.id}: secret var(s) {', '.join(missing)} were not stored; "
                         f"give them again: {given}")
    sources = tuple(str(s) for s in job.inventory.get("sources") or ())
    cwd = job.inventory.get("cwd")
    return JobRequest(job.pattern, task, merged, config, sources,
                      Path(cwd) if cwd else None, job.who)
