"""Failure policy, rollback order, ignore_errors, deadline, lock, and action failures."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from executor_harness import Executor, request, step

from host_executor import protocol


def _undoable(name: str, log: Path, fail: bool = False) -> dict[str, Any]:
    cmd = f"echo do-{name} >> {log}" + ("; exit 1" if fail else "")
    return dict(
        step(name, "shell", cmd=cmd),
        undo={"action": "shell", "args": {"cmd": f"echo undo-{name} >> {log}"}},
    )


def test_rollback_runs_undos_in_reverse_order(executor: Executor, tmp_path: Path) -> None:
    log = tmp_path / "log"
    doc = request(
        [_undoable("a", log), step("no-undo", "command", argv=["true"]), _undoable("b", log),
         _undoable("c", log, fail=True), _undoable("d", log)],
        on_failure="rollback",
    )
    out = executor.run(doc)
    assert out.rc == protocol.EXIT_FAILED
    assert log.read_text().split() == ["do-a", "do-b", "do-c", "undo-b", "undo-a"]
    start = out.one("rollback_start")
    assert start["steps"] == [2, 0] and "step 4 ('c') failed" in start["reason"]
    assert [e["name"] for e in out.of("rollback_step_end")] == ["b", "a"]
    assert [e["index"] for e in out.of("rollback_step_start")] == [2, 0]
    assert out.one("rollback_end") == {
        "event": "rollback_end", "status": "ok",
        "counts": {"ok": 0, "changed": 2, "failed": 0, "skipped": 0},
    }
    done = out.one("done")
    assert done["rolled_back"] is True and done["failed_step"] == 3 and done["not_run"] == 1
    assert done["counts"] == {"ok": 0, "changed": 3, "failed": 1, "skipped": 0}


def test_a_failing_undo_does_not_stop_the_others(executor: Executor, tmp_path: Path) -> None:
    log = tmp_path / "log"
    bad_undo = dict(step("b", "shell", cmd="true"),
                    undo={"action": "command", "args": {"argv": ["false"]}})
    doc = request([_undoable("a", log), bad_undo, step("boom", "command", argv=["false"])],
                  on_failure="rollback")
    out = executor.run(doc)
    assert [e["status"] for e in out.of("rollback_step_end")] == ["failed", "changed"]
    assert out.one("rollback_end")["status"] == "failed"
    assert out.one("done")["rolled_back"] is False
    assert "undo-a" in log.read_text()


def test_stop_policy_runs_no_undo(executor: Executor, tmp_path: Path) -> None:
    log = tmp_path / "log"
    out = executor.run(request([_undoable("a", log), step("boom", "command", argv=["false"])]))
    assert not out.of("rollback_start")
    assert log.read_text().split() == ["do-a"]
    assert out.one("done")["rolled_back"] is None


def test_steps_after_a_failure_get_no_events(executor: Executor) -> None:
    out = executor.run(request([step("boom", "command", argv=["false"]),
                                step("after", "command", argv=["true"])]))
    assert [e["name"] for e in out.of("step_start")] == ["boom"]
    assert out.one("done")["not_run"] == 1


def test_ignore_errors_continues(executor: Executor) -> None:
    doc = request([dict(step("boom", "command", argv=["false"]), ignore_errors=True),
                   step("after", "command", argv=["true"])])
    out = executor.run(doc)
    assert out.rc == 0
    boom, after = out.ends
    assert boom["status"] == "failed" and boom["ignored"] is True
    assert after["status"] == "changed"
    done = out.one("done")
    assert done["status"] == "changed" and done["ignored"] == 1
    assert done["counts"]["failed"] == 1


def test_deadline_passed_fails_steps_that_would_start(executor: Executor) -> None:
    doc = request([step("late", "command", argv=["true"])], deadline=time.time() - 1)
    out = executor.run(doc)
    assert out.one("step_end")["msg"] == "deadline passed"
    assert out.rc == protocol.EXIT_FAILED


def test_deadline_in_the_future_runs(executor: Executor) -> None:
    out = executor.run(request([step("ok", "command", argv=["true"])], deadline=time.time() + 600))
    assert out.rc == 0


def test_lock_contention_exits_3(executor: Executor) -> None:
    holder = executor.start()
    holder.send(request([step("hold", "command", argv=["sleep", "1.5"])], rid="holder",
                        lock={"name": "instance-vm1", "timeout": 5}))
    holder.read_until("step_start")
    started = time.monotonic()
    out = executor.run(request([step("x", "command", argv=["true"])], rid="waiter",
                               lock={"name": "instance-vm1", "timeout": 0.3}))
    assert time.monotonic() - started < 3
    assert out.rc == protocol.EXIT_LOCK
    error = out.one("error")
    assert error["code"] == "lock_timeout" and error["lock"] == "instance-vm1"
    assert error["exit"] == protocol.EXIT_LOCK
    assert not out.of("step_start")
    holder.read_until("done")
    assert holder.finish()[0] == 0
    # Released with the holder: the next one gets it at once.
    again = executor.run(request([step("x", "command", argv=["true"])], rid="after",
                                 lock={"name": "instance-vm1", "timeout": 0.3}))
    assert again.rc == 0


def test_lock_waits_for_the_holder(executor: Executor) -> None:
    holder = executor.start()
    holder.send(request([step("hold", "command", argv=["sleep", "0.5"])], rid="h",
                        lock={"name": "shared"}))
    holder.read_until("step_start")
    out = executor.run(request([step("x", "command", argv=["true"])], rid="w",
                               lock={"name": "shared", "timeout": 20}))
    assert out.rc == 0
    holder.finish()


def test_lock_names_are_sanitized(executor: Executor) -> None:
    out = executor.run(request([step("x", "command", argv=["true"])],
                               lock={"name": "../../etc/passwd", "timeout": 1}))
    assert out.rc == 0
    locks = list((executor.cache / "locks").iterdir())
    assert len(locks) == 1 and locks[0].name.endswith(".lock")
    assert not locks[0].name.startswith(".")


def test_action_exception_is_the_steps_failure(executor: Executor, tmp_path: Path) -> None:
    # Validation refuses every bad input it knows of (a NUL in argv did this once), so a
    # sitecustomize makes spawning raise what no action expects.
    (tmp_path / "sitecustomize.py").write_text(
        "import os, subprocess\n"
        "def _boom(*a, **k):\n"
        "    raise ValueError('unforeseen')\n"
        "subprocess.Popen = os.posix_spawn = _boom\n"
    )
    path = os.pathsep.join(p for p in (str(tmp_path), os.environ.get("PYTHONPATH")) if p)
    out = executor.run(request([step("nul", "command", argv=["echo", "ab"]),
                                step("after", "command", argv=["true"])]),
                       env={"PYTHONPATH": path})
    end = out.ends[0]
    assert end["status"] == "failed" and "ValueError" in end["msg"]
    assert out.rc == 1 and "Traceback" not in out.stderr


def test_libvirt_action_without_support_fails_its_step(executor: Executor) -> None:
    vm = {"name": "vm", "action": "libvirt_domain", "args": {"name": "vm1", "state": "running"}}
    out = executor.run(request([vm]))
    end = out.one("step_end")
    # This interpreter has no libvirt bindings: the step says which package is missing.
    assert end["status"] == "failed" and "install python3-libvirt" in end["msg"]


def test_cache_dir_is_private(executor: Executor) -> None:
    executor.run(request([step("x", "command", argv=["true"])]))
    for folder in (executor.cache, executor.cache / "journal"):
        assert folder.stat().st_mode & 0o777 == 0o700
    for entry in (executor.cache / "journal").iterdir():
        assert entry.stat().st_mode & 0o777 == 0o600, entry
