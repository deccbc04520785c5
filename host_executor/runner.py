"""Running a validated request: steps in order, the failure policy, rollback, ``done``.

Policy, as built:
- A failed step stops the sequence unless it has ``ignore_errors``. Steps after it are not
  run and get NO events; ``done.not_run`` counts them, ``done.counts`` counts the steps
  that have a ``step_end``.
- ``on_failure: rollback``: the ``undo`` of each step that *changed* something and has one
  runs in reverse order, between ``rollback_start`` and ``rollback_end``. An undo that fails
  does not stop the others. Rollback also runs when the controller went away mid-sequence
  (undo steps are not cancelled by that; they are bounded by their own timeouts).
- ``deadline``: a step that would start after it fails with "deadline passed".
- An explicit cancel (``watch``) kills the running step's process group; the step fails
  (unless it had already finished: its own result wins), the sequence stops as for any
  failure and ``done.interrupted`` is true. A lost controller does not stop anything: the
  sequence runs to its end and ``done.detached`` says the controller was gone.
- ``resume`` (steps an earlier attempt already finished, from its journal): those steps are
  not run again and get no events; their results count in ``done`` and their undo data is
  kept, so a rollback still undoes what they made.
- An unexpected exception inside an action fails that step (msg: type and text).
"""

from __future__ import annotations

import time

from host_executor import actions, protocol
from host_executor.emitter import Emitter
from host_executor.errors import StepFailed
from host_executor.step import CancelToken, StepContext, StepResult
from host_executor.watch import ControllerWatch

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every host start-up time; annotations are strings
    from typing import Any, Dict, List, Optional


def _execute(action: str, args: Dict[str, Any], ctx: StepContext) -> StepResult:
    try:
        return actions.handler_for(action)(args, ctx)
    except StepFailed as exc:
        return StepResult(
            "failed", msg=exc.message, rc=exc.rc, stdout=exc.stdout, stderr=exc.stderr, data=exc.data
        )
    except Exception as exc:  # an action's bug must fail its step, never the executor
        import traceback

        return StepResult(
            "failed",
            msg="%s: %s" % (type(exc).__name__, exc),
            data={"traceback": traceback.format_exc(limit=-8)[-4000:]},
        )


class Sequence:
    def __init__(self, request: Dict[str, Any], emitter: Emitter, watch: ControllerWatch) -> None:
        self.req = request
        self.emitter = emitter
        self.watch = watch
        self.counts = {status: 0 for status in protocol.STATUSES}
        self.ignored = 0
        self.completed: List[int] = []
        self.failed_at: Optional[int] = None
        self.prior = {int(p["index"]): StepResult(p["status"], data=p.get("data"))
                      for p in request.get("resume") or ()}

    def _end_fields(self, result: StepResult, started: float) -> Dict[str, Any]:
        limit = self.req["output_limit"]
        fields: Dict[str, Any] = {"status": result.status, "rc": result.rc}
        fields.update(protocol.encode_output(result.stdout, limit, "stdout"))
        fields.update(protocol.encode_output(result.stderr, limit, "stderr"))
        fields["duration"] = round(time.monotonic() - started, 3)
        fields["data"] = result.data
        fields["msg"] = result.msg
        if self.req["diff"] and result.diff is not None:
            fields["diff"] = result.diff
        return fields

    def _context(self, index: int, step: Dict[str, Any], action: str, cancel: CancelToken,
                 timeout: Optional[float]) -> StepContext:
        return StepContext(
            index, step["name"], action, bool(self.req["check"]), bool(self.req["diff"]),
            timeout, self.req["output_limit"], cancel,
        )

    def run_step(self, index: int, step: Dict[str, Any]) -> StepResult:
        head = {"index": index, "name": step["name"], "action": step["action"]}
        self.emitter.emit(dict(event="step_start", **head))
        started = time.monotonic()
        deadline = self.req["deadline"]
        if deadline is not None and time.time() > deadline:
            result = StepResult("failed", msg="deadline passed")
        else:
            ctx = self._context(index, step, step["action"], self.watch.token, step.get("timeout"))
            result = _execute(step["action"], step.get("args") or {}, ctx)
        end = dict(event="step_end", **head)
        end.update(self._end_fields(result, started))
        if result.status == "failed" and step.get("ignore_errors"):
            end["ignored"] = True
        self.emitter.emit(end)
        return result

    def run(self) -> Dict[str, Any]:
        started = time.monotonic()
        steps = self.req["steps"]
        ran = 0
        for index, step in enumerate(steps):
            if self.watch.cancelled:
                break
            prior = self.prior.get(index)
            result = prior if prior is not None else self.run_step(index, step)
            ran += 1
            self.counts[result.status] += 1
            if result.status == "changed" and not (result.data or {}).get("existed"):
                # Only what this run made is undone: a step that found its resource there
                # (ok, or changed it in place: data.existed) must never destroy it.
                self.completed.append(index)
            elif result.status == "failed":
                if step.get("ignore_errors") and not self.watch.cancelled:
                    self.ignored += 1
                    continue
                self.failed_at = index
                break
        interrupted = self.watch.cancelled
        failed = self.failed_at is not None or (interrupted and ran < len(steps))
        rolled_back = None
        if failed and self.req["on_failure"] == "rollback":
            rolled_back = self.rollback()
        return self._done(failed, ran, interrupted, rolled_back, started)

    def _done(self, failed: bool, ran: int, interrupted: bool, rolled_back: Optional[bool],
              started: float) -> Dict[str, Any]:
        if failed:
            status, code = "failed", protocol.EXIT_FAILED
        else:
            status = "changed" if self.counts["changed"] else "ok"
            code = protocol.EXIT_OK
        done: Dict[str, Any] = {
            "event": "done",
            "id": self.req["id"],
            "status": status,
            "exit": code,
            "counts": dict(self.counts),
            "ignored": self.ignored,
            "not_run": len(self.req["steps"]) - ran,
            "failed_step": self.failed_at,
            "interrupted": interrupted,
            "reason": self.watch.reason if interrupted else None,
            "rolled_back": rolled_back,
            "detached": self.watch.lost_reason,
            "resumed": len(self.prior),
            "duration": round(time.monotonic() - started, 3),
        }
        self.emitter.emit(done)
        return done

    def rollback(self) -> bool:
        """Undo the changed steps in reverse order; True when every undo succeeded."""
        steps = self.req["steps"]
        todo = [i for i in reversed(self.completed) if steps[i].get("undo")]
        if self.watch.cancelled:
            reason = "interrupted: %s" % self.watch.reason
        else:
            failed = self.failed_at or 0
            reason = "step %d (%r) failed" % (failed + 1, steps[failed]["name"])
        self.emitter.emit({"event": "rollback_start", "reason": reason, "steps": todo})
        counts = {status: 0 for status in protocol.STATUSES}
        # A cancel must not cancel the undo steps themselves.
        cancel = CancelToken()
        for index in todo:
            step = steps[index]
            undo = step["undo"]
            head = {"index": index, "name": step["name"], "action": undo["action"]}
            self.emitter.emit(dict(event="rollback_step_start", **head))
            started = time.monotonic()
            timeout = undo.get("timeout") or step.get("timeout")
            ctx = self._context(index, step, undo["action"], cancel, timeout)
            result = _execute(undo["action"], undo.get("args") or {}, ctx)
            counts[result.status] += 1
            end = dict(event="rollback_step_end", **head)
            end.update(self._end_fields(result, started))
            self.emitter.emit(end)
        ok = counts["failed"] == 0
        self.emitter.emit(
            {"event": "rollback_end", "status": "ok" if ok else "failed", "counts": counts}
        )
        return ok
