"""Base images on hosts: ``hostplane image push``, ``image list``, ``image remove``.

An image travels once per content: it is named by its sha256, and a host that has that
content is skipped after one round trip (the executor's ``image`` action, state
``prepare``). Otherwise the file streams over the host's one SSH connection into a partial
file on the host (``Transport.send_file``), appended from where an earlier, interrupted
upload stopped; then the executor checks its size and sha256 and renames it to its final
name (state ``present``). A connection cut mid-way is retried on a fresh connection from
the bytes the host has, a few times, before the host is reported unreachable; a later push
resumes the same way. Several hosts go at once (``forks``).
"""

from __future__ import annotations

import asyncio
import hashlib
import shlex
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from control_server import executor_bundle
from control_server.api import RunConfig, host_connection
from control_server.delivery import Delivery
from control_server.errors import ExecutorError, InputError, TransportError
from control_server.inventory import Host
from control_server.transport import HandshakeLimiter, Transport
from control_server.transport.base import SEND_CHUNK
from host_executor import protocol

Report = Callable[[dict[str, Any]], None]
QCOW2_MAGIC = b"QFI\xfb"
RESUME_DELAYS = (0.5, 1.0, 2.0)  # after a cut connection: reconnect and resume, this often
EXIT_BUSY = 75  # the upload command: another upload of this image holds the partial file
EXIT_MOVED = 76  # the partial file is not the size the host reported: look again
COMMIT_LOCK = {"name": "hostplane-images", "timeout": 600}


@dataclass(frozen=True)
class LocalImage:
    """An image file on the control server, as it will be stored on hosts."""

    path: Path
    name: str
    digest: str
    size: int
    format: str


def inspect_image(path: Path, name: str, fmt: str | None = None) -> LocalImage:
    """Read ``path`` once for its sha256; its format from its header unless given."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            header = handle.read(4)
            digest.update(header)
            while chunk := handle.read(SEND_CHUNK * 4):
                digest.update(chunk)
        size = path.stat().st_size
    except OSError as exc:
        raise InputError(f"image file {path}: {exc.strerror or exc}") from None
    detected = "qcow2" if header == QCOW2_MAGIC else "raw"
    if fmt is not None and fmt != detected:
        raise InputError(f"image file {path} is {detected} (by its header), not {fmt}")
    return LocalImage(path, name, digest.hexdigest(), size, detected)


@dataclass
class HostOutcome:
    host: str
    status: str  # ok | changed | skipped | uploaded | failed | unreachable
    message: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    sent: int = 0  # bytes of the image sent to this host by this push
    resumed_from: int = 0  # bytes the host already had when the upload started

    def as_json(self) -> dict[str, Any]:
        return {"kind": "host_end", "host": self.host, "status": self.status,
                "message": self.message, "sent": self.sent,
                "resumed_from": self.resumed_from, "data": self.data}


class StepFailure(Exception):
    def __init__(self, message: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.data = data or {}


@dataclass
class HostSession:
    """One host's connection and executor, for the few requests an image command sends."""

    host: Host
    transport: Transport
    delivery: Delivery
    check: bool = False

    async def step(self, action: str, args: dict[str, Any],
                   lock: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run one executor step; its ``step_end`` event, or ``StepFailure`` naming why."""
        wire = {"name": f"{action} {args.get('name', '')}".strip(), "action": action,
                "args": {k: v for k, v in args.items() if v is not None},
                "timeout": None, "undo": None, "ignore_errors": False}
        request = protocol.validate_request(protocol.make_request(
            uuid.uuid4().hex, [wire], check=self.check, lock=lock))
        outcome = await self.delivery.run(self.transport, request, lambda _event: None)
        for event in outcome.events:
            if event.get("event") == "error":
                raise StepFailure(f"executor: {event.get('message')}")
            if event.get("event") == "step_end":
                if event.get("status") == "failed":
                    raise StepFailure(str(event.get("msg") or "failed"), event.get("data"))
                return event
        why = outcome.stderr.strip()[-500:] or "no result"
        raise ExecutorError(f"executor exit {outcome.exit_status}: {why}", self.host.name)


def exit_code(outcomes: Iterable[HostOutcome]) -> int:
    """As the rest of the CLI: 2 when a host failed, 4 when one was unreachable (2 wins)."""
    statuses = {o.status for o in outcomes}
    return 2 if "failed" in statuses else 4 if "unreachable" in statuses else 0


async def on_hosts(hosts: list[Host], config: RunConfig,
                   work: Callable[[HostSession], Awaitable[HostOutcome]],
                   report: Report) -> list[HostOutcome]:
    """``work`` on every host, ``config.options.forks`` at once, each on its own connection."""
    bundle = executor_bundle.build_bundle()
    limiter = HandshakeLimiter(config.transport.handshake_limit,
                               config.transport.handshake_retries)
    sem = asyncio.Semaphore(max(1, config.options.forks))

    async def one(host: Host) -> HostOutcome:
        transport, delivery = host_connection(host, config, bundle, limiter)
        session = HostSession(host, transport, delivery, config.options.check)
        async with sem:
            try:
                await transport.connect()
                outcome = await work(session)
            except TransportError as exc:
                outcome = HostOutcome(host.name, "unreachable", exc.reason)
            except StepFailure as exc:
                outcome = HostOutcome(host.name, "failed", str(exc), exc.data)
            except ExecutorError as exc:
                outcome = HostOutcome(host.name, "failed", exc.reason)
            finally:
                await transport.close()
        report(outcome.as_json())
        return outcome

    return list(await asyncio.gather(*(one(h) for h in hosts)))


def image_dir_of(host: Host, given: str | None) -> str | None:
    """The host's image folder: given on the command line, else its ``image_dir`` var
    (as ``launch_instance`` reads it), else None (the executor's default)."""
    value = given or host.vars.get("image_dir")
    return str(value) if value else None


def overlay_dirs_of(host: Host, given: list[str] | None) -> list[str] | None:
    """Where instances' disks are: given, else the host's ``pool_path`` (host_prepare's)."""
    if given:
        return given
    value = host.vars.get("pool_path")
    return [str(value)] if value else None


# --- push -------------------------------------------------------------------------------


def upload_command(partial: str, offset: int) -> str:
    """Append stdin to ``partial``, only if it still holds ``offset`` bytes, under a lock."""
    quoted = shlex.quote(partial)
    return (
        f"umask 077; exec 9>>{quoted} || exit 1; "
        f"flock -n 9 || {{ echo 'another upload of this image is under way' >&2; "
        f"exit {EXIT_BUSY}; }}; "
        f"size=$(stat -c %s {quoted}) && [ \"$size\" = {offset} ] || "
        f"{{ echo \"partial file is $size bytes, expected {offset}\" >&2; exit {EXIT_MOVED}; }}; "
        f"exec cat >&9"
    )


@dataclass
class Pusher:
    """Pushes one image to hosts; ``image_dir`` None: the executor's default folder."""

    image: LocalImage
    report: Report
    image_dir: str | None = None

    def _args(self, session: HostSession, state: str, **extra: Any) -> dict[str, Any]:
        return {"name": self.image.name, "digest": self.image.digest,
                "dir": image_dir_of(session.host, self.image_dir),
                "format": self.image.format, "state": state, **extra}

    async def push(self, session: HostSession) -> HostOutcome:
        host = session.host.name
        outcome = HostOutcome(host, "uploaded")
        for attempt, delay in enumerate((0.0, *RESUME_DELAYS)):
            if attempt:
                self.report({"kind": "image_retry", "host": host, "attempt": attempt,
                             "after": delay})
                await session.transport.discard()
                await asyncio.sleep(delay)
                await session.transport.connect()
            prepared = (await session.step("image", self._args(session, "prepare")))["data"]
            if prepared.get("present"):
                outcome.status, outcome.data = "skipped", prepared
                outcome.message = f"has sha256:{self.image.digest[:16]}… already"
                return outcome
            if session.check:
                outcome.status, outcome.data = "changed", prepared
                outcome.message = f"(check mode) would upload {self.image.size} bytes"
                return outcome
            if attempt == 0:
                outcome.resumed_from = int(prepared["offset"])
            if await self._upload(session, prepared, outcome, last=attempt == len(RESUME_DELAYS)):
                break
        end = await session.step("image", self._args(session, "present", size=self.image.size),
                                 lock=COMMIT_LOCK)
        outcome.data, outcome.message = end["data"], str(end.get("msg", ""))
        return outcome

    async def _upload(self, session: HostSession, prepared: dict[str, Any],
                      outcome: HostOutcome, last: bool) -> bool:
        """Send the rest of the file; False when the connection was cut (try again)."""
        offset, host = int(prepared["offset"]), session.host.name
        total = self.image.size

        before = outcome.sent

        def progress(sent: int) -> None:
            outcome.sent = before + sent  # what this push sent, over every attempt
            self.report({"kind": "image_progress", "host": host, "sent": offset + sent,
                         "total": total, "offset": offset})

        command = session.delivery.shell(upload_command(str(prepared["partial"]), offset))
        try:
            result = await session.transport.send_file(command, self.image.path, offset,
                                                       progress)
        except TransportError:
            if last:
                raise
            return False
        if result.exit_status is None and not last:
            return False  # the channel died without a status: the connection went
        if result.exit_status in (EXIT_MOVED, EXIT_BUSY) and not last:
            return False  # e.g. the cut channel's writer still finishing: look again
        if result.exit_status != 0:
            why = result.stderr.decode("utf-8", "replace").strip()
            raise StepFailure(f"upload to {prepared['partial']} failed "
                              f"(exit {result.exit_status}): {why}")
        return True


async def push(hosts: list[Host], config: RunConfig, image: LocalImage, report: Report,
               image_dir: str | None = None) -> list[HostOutcome]:
    return await on_hosts(hosts, config, Pusher(image, report, image_dir).push, report)


# --- list and remove --------------------------------------------------------------------


async def list_images(hosts: list[Host], config: RunConfig, report: Report,
                      image_dir: str | None = None,
                      overlay_dirs: list[str] | None = None) -> list[HostOutcome]:
    async def work(session: HostSession) -> HostOutcome:
        end = await session.step("image_list", {"dir": image_dir_of(session.host, image_dir),
                                                "overlay_dirs": overlay_dirs_of(session.host,
                                                                                overlay_dirs)})
        return HostOutcome(session.host.name, "ok", str(end.get("msg", "")), end["data"])

    return await on_hosts(hosts, config, work, report)


async def remove(hosts: list[Host], config: RunConfig, name: str, report: Report,
                 image_dir: str | None = None,
                 overlay_dirs: list[str] | None = None) -> list[HostOutcome]:
    async def work(session: HostSession) -> HostOutcome:
        end = await session.step("image", {"name": name, "state": "absent",
                                           "dir": image_dir_of(session.host, image_dir),
                                           "overlay_dirs": overlay_dirs_of(session.host,
                                                                           overlay_dirs)},
                                   lock=COMMIT_LOCK)
        return HostOutcome(session.host.name, str(end["status"]), str(end.get("msg", "")),
                           end["data"])

    return await on_hosts(hosts, config, work, report)
