"""Executor delivery: one channel per sequence, upload only when the host lacks this version.

A sequence runs as ONE channel that execs the cached executor zipapp, or prints the
"missing" marker without reading stdin; only then the zipapp is uploaded (once per host per
version) and the channel is run again. The channel's stdin stays open: an explicit cancel
(Ctrl-C, ``jobs cancel``) travels on it as a ``{"cancel": ...}`` line, while a lost
connection only detaches the executor. After a lost connection, ``follow_journal`` follows
the host-side journal in a new channel until the sequence's end, so nothing is lost.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from control_server import executor_bundle
from control_server.errors import ExecutorError
from control_server.transport import Transport
from host_executor import protocol

EventHandler = Callable[[dict[str, Any]], None]
CANCEL_MESSAGE = b'{"cancel": "cancelled by the control server"}\n'


@dataclass
class SequenceOutcome:
    exit_status: int | None
    events: list[dict[str, Any]] = field(default_factory=list)
    stderr: str = ""
    noise: list[str] = field(default_factory=list)  # stdout lines that were not events
    uploaded: bool = False
    missing: bool = False

    @property
    def done(self) -> dict[str, Any] | None:
        done: dict[str, Any] | None = None
        for event in self.events:
            if event.get("event") == "done":
                done = event
        return done


class _LineParser:
    """Turns stdout lines into events as they arrive; keeps anything else as noise."""

    def __init__(self, outcome: SequenceOutcome, on_event: EventHandler) -> None:
        self.outcome = outcome
        self.on_event = on_event

    def feed(self, line: bytes) -> None:
        text = line.strip()
        if not text:
            return
        if text == protocol.MISSING_MARKER.encode():
            self.outcome.missing = True
            return
        try:
            event = protocol.decode_event(text)
        except protocol.ProtocolError as exc:
            if b"protocol version mismatch" in text or "version mismatch" in str(exc):
                raise ExecutorError(str(exc)) from None
            # e.g. a login banner or a profile script's output: kept, never fatal.
            self.outcome.noise.append(text.decode("utf-8", "replace")[:500])
            return
        self.outcome.events.append(event)
        self.on_event(event)


def become_command(command: str, become: bool, user: str | None = None) -> str:
    """``command`` as a host runs it: through ``sudo -n`` when it becomes."""
    if not become:
        return command
    as_user = f"-u {shlex.quote(user)} " if user else ""
    return f"sudo -n {as_user}-- /bin/sh -c {shlex.quote(command)}"


@dataclass
class Delivery:
    """How to start the executor on one host (interpreter, cache dir, become)."""

    bundle: executor_bundle.Bundle
    python: str = "python3"
    remote_dir: str = executor_bundle.DEFAULT_REMOTE_DIR
    become: bool = False
    become_user: str | None = None

    def _wrap(self, command: str) -> str:
        return become_command(command, self.become, self.become_user)

    def shell(self, command: str) -> str:
        """``command`` as this host runs it (through sudo when it becomes)."""
        return self._wrap(command)

    def launcher(self, *args: str) -> str:
        return self._wrap(
            executor_bundle.launcher_command(
                self.remote_dir, self.python, self.bundle.digest, list(args)
            )
        )

    def upload(self) -> str:
        return self._wrap(executor_bundle.upload_command(self.remote_dir, self.bundle.digest))

    async def _upload(self, transport: Transport) -> None:
        result = await transport.run(self.upload(), self.bundle.data, lambda _l: None)
        if result.exit_status != 0:
            why = result.stderr.decode("utf-8", "replace").strip()
            raise ExecutorError(f"could not upload the executor: {why}", transport.target.host)

    async def run(
        self, transport: Transport, request: dict[str, Any], on_event: EventHandler
    ) -> SequenceOutcome:
        """Run one request; upload the executor first only if the host reports it missing."""
        payload = json.dumps(request, ensure_ascii=True, separators=(",", ":")).encode() + b"\n"
        outcome = SequenceOutcome(None)
        result = await transport.run(self.launcher(), payload,
                                     _LineParser(outcome, on_event).feed, CANCEL_MESSAGE)
        if outcome.missing and result.exit_status == protocol.EXIT_MISSING:
            await self._upload(transport)
            outcome = SequenceOutcome(None, uploaded=True)
            result = await transport.run(
                self.launcher(), payload, _LineParser(outcome, on_event).feed, CANCEL_MESSAGE
            )
        outcome.exit_status = result.exit_status
        outcome.stderr = result.stderr.decode("utf-8", "replace")
        if outcome.missing:
            raise ExecutorError(
                "the executor is still missing after the upload "
                f"(remote cache dir {self.remote_dir} not writable?)",
                transport.target.host,
            )
        return outcome

    async def stream(
        self, transport: Transport, args: list[str], on_event: EventHandler
    ) -> SequenceOutcome:
        """Run a long-lived executor mode (``--watch-domains``) until its channel ends,
        uploading the executor first when the host lacks it."""
        outcome = SequenceOutcome(None)
        result = await transport.run(self.launcher(*args), b"", _LineParser(outcome, on_event).feed)
        if outcome.missing and result.exit_status == protocol.EXIT_MISSING:
            await self._upload(transport)
            outcome = SequenceOutcome(None, uploaded=True)
            result = await transport.run(
                self.launcher(*args), b"", _LineParser(outcome, on_event).feed
            )
        outcome.exit_status = result.exit_status
        outcome.stderr = result.stderr.decode("utf-8", "replace")
        return outcome

    async def follow_journal(self, transport: Transport, request_id: str,
                             on_event: EventHandler) -> SequenceOutcome:
        """Follow a (detached) sequence's journal on the host until its ``done``; the
        outcome's events end with an ``error`` ``executor_died`` when it died without one."""
        args = ("--journal", request_id, "--follow")
        outcome = SequenceOutcome(None)
        result = await transport.run(self.launcher(*args), b"",
                                     _LineParser(outcome, on_event).feed, CANCEL_MESSAGE)
        if outcome.missing and result.exit_status == protocol.EXIT_MISSING:
            await self._upload(transport)  # any version reads any journal
            outcome = SequenceOutcome(None, uploaded=True)
            result = await transport.run(self.launcher(*args), b"",
                                         _LineParser(outcome, on_event).feed, CANCEL_MESSAGE)
        outcome.exit_status = result.exit_status
        outcome.stderr = result.stderr.decode("utf-8", "replace")
        return outcome

    async def fetch_journal(self, transport: Transport, request_id: str) -> list[dict[str, Any]]:
        """The events the executor journaled for ``request_id`` on the host.

        A host that lacks this executor version (the control server was upgraded since) gets
        it first: any version reads the journal format."""
        outcome = SequenceOutcome(None)
        command = self.launcher("--journal", request_id)
        result = await transport.run(command, b"", _LineParser(outcome, lambda _e: None).feed)
        if outcome.missing:
            await self._upload(transport)
            outcome = SequenceOutcome(None)
            result = await transport.run(command, b"", _LineParser(outcome, lambda _e: None).feed)
        if outcome.missing:
            return []
        if result.exit_status != 0:
            errors = [e.get("message", "") for e in outcome.events if e.get("event") == "error"]
            why = "; ".join(errors) or result.stderr.decode("utf-8", "replace").strip()
            raise ExecutorError(f"no journal for request {request_id}: {why}")
        return [e for e in outcome.events if e.get("event") != "error"]
