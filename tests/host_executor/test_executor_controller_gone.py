"""A lost controller detaches the executor (the sequence runs to its end, journaled); an
explicit cancel (stdin message, SIGTERM/SIGINT) or ``on_disconnect: abort`` kills the step's
group and applies the failure policy; ``--journal ID --follow`` follows a detached run."""

from __future__ import annotations

import json
import signal
from typing import Any

import pytest
from executor_harness import Executor, Running, parse_events, request, step, wait_gone

from host_executor import protocol


def _long_sequence(marker: str, rid: str, **kw: Any) -> dict[str, Any]:
    name, value = marker.split("=", 1)
    return request(
        [
            step("first", "command", argv=["true"]),
            step("long", "shell", cmd="sleep 300 & sleep 300", env={name: value}),
            step("never", "command", argv=["true"]),
        ],
        rid=rid,
        **kw,
    )


def _journal(executor: Executor, rid: str) -> list[dict[str, Any]]:
    out = executor.run(b"", args=["--journal", rid])
    assert out.rc == 0, out
    return out.events


def _assert_interrupted(events: list[dict[str, Any]], reason: str) -> None:
    kinds = [e["event"] for e in events]
    assert kinds[:5] == ["hello", "step_start", "step_end", "step_start", "step_end"], kinds
    assert kinds[-1] == "done"
    long_end = events[4]
    assert long_end["name"] == "long" and long_end["status"] == "failed"
    assert long_end["msg"].startswith("interrupted: ") and reason in long_end["msg"]
    done = events[-1]
    assert done["interrupted"] is True and reason in done["reason"]
    assert done["status"] == "failed" and done["exit"] == protocol.EXIT_FAILED
    assert done["counts"] == {"ok": 0, "changed": 1, "failed": 1, "skipped": 0}
    assert done["not_run"] == 1
    assert not any(e.get("name") == "never" for e in events)


def _start(executor: Executor, doc: dict[str, Any], args: tuple[str, ...] = ()) -> Running:
    running = executor.start(args)
    running.send(doc)
    running.read_until("step_start")
    start = running.read_until("step_start")
    assert start["name"] == "long"
    return running


def _assert_detached(events: list[dict[str, Any]], reason: str) -> None:
    kinds = [e["event"] for e in events]
    assert kinds == ["hello"] + ["step_start", "step_end"] * 3 + ["done"], kinds
    assert all(e["status"] == "changed" for e in events if e["event"] == "step_end")
    done = events[-1]
    assert done["interrupted"] is False and done["exit"] == 0
    assert reason in done["detached"]


def _short_sequence(marker: str, rid: str, **kw: Any) -> dict[str, Any]:
    doc = _long_sequence(marker, rid, **kw)
    doc["steps"][1]["args"]["cmd"] = "sleep 1.5"
    return doc


def test_stdout_closed_detaches_and_the_sequence_ends(any_executor: Executor, marker: str) -> None:
    running = _start(any_executor, _short_sequence(marker, "gone-stdout"), ())
    assert running.proc.stdout is not None
    running.proc.stdout.close()  # the channel closed: nobody reads our events any more
    rc, stderr = running.finish()
    assert rc == 0 and "Traceback" not in stderr
    _assert_detached(_journal(any_executor, "gone-stdout"), "stdout closed")


def test_stdout_closed_with_abort_kills_the_step(any_executor: Executor, marker: str) -> None:
    doc = _long_sequence(marker, "gone-abort", on_disconnect="abort")
    running = _start(any_executor, doc, ())
    assert running.proc.stdout is not None
    running.proc.stdout.close()
    rc, stderr = running.finish()
    assert rc == protocol.EXIT_FAILED and "Traceback" not in stderr
    assert wait_gone(marker) == []
    _assert_interrupted(_journal(any_executor, "gone-abort"), "stdout closed")


def test_stdin_closed_with_watch_stdin_and_abort(any_executor: Executor, marker: str) -> None:
    doc = _long_sequence(marker, "gone-stdin", on_disconnect="abort")
    running = _start(any_executor, doc, ("--watch-stdin",))
    assert running.proc.stdin is not None
    running.proc.stdin.close()
    done = running.read_until("done")
    rc, stderr = running.finish()
    assert rc == protocol.EXIT_FAILED and "Traceback" not in stderr
    assert wait_gone(marker) == []
    assert done["reason"] == "stdin closed"
    _assert_interrupted(running.events, "stdin closed")
    assert _journal(any_executor, "gone-stdin") == running.events


def test_stdin_closed_without_watch_stdin_is_not_gone(executor: Executor) -> None:
    # A controller may send the request and close stdin: that is normal.
    running = executor.start()
    running.send(request([step("nap", "command", argv=["sleep", "0.5"])]), close=True)
    done = running.read_until("done")
    assert running.finish()[0] == 0
    assert done["interrupted"] is False and done["status"] == "changed"
    assert done["detached"] is None


def test_cancel_message_on_stdin_stops_the_step(executor: Executor, marker: str) -> None:
    running = _start(executor, _long_sequence(marker, "cancel-msg"))
    assert running.proc.stdin is not None
    running.proc.stdin.write(b'{"cancel": "Ctrl-C"}\n')
    running.proc.stdin.flush()
    running.read_until("done")
    rc, stderr = running.finish()
    assert rc == protocol.EXIT_FAILED and "Traceback" not in stderr
    assert wait_gone(marker) == []
    _assert_interrupted(running.events, "cancelled: Ctrl-C")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_cancel_signal_kills_the_step_and_journals(
    executor: Executor, marker: str, signum: signal.Signals
) -> None:
    rid = f"gone-{signum.name}"
    running = _start(executor, _long_sequence(marker, rid))
    running.signal(signum)
    running.read_until("done")
    rc, stderr = running.finish()
    assert rc == protocol.EXIT_FAILED and "Traceback" not in stderr
    assert wait_gone(marker) == []
    _assert_interrupted(running.events, f"{signum.name} received")
    assert _journal(executor, rid) == running.events


def test_sighup_detaches(executor: Executor, marker: str) -> None:
    running = _start(executor, _short_sequence(marker, "gone-hup"))
    running.signal(signal.SIGHUP)
    rc, stderr = running.finish()
    assert rc == 0 and "Traceback" not in stderr
    _assert_detached(_journal(executor, "gone-hup"), "SIGHUP received")


def test_a_step_that_ends_as_it_is_hung_up_on_keeps_its_result(executor: Executor) -> None:
    # The race: the step's own exit and the hang-up arrive together (5 tries).
    for attempt in range(5):
        doc = request([step("hup", "shell", cmd="kill -HUP $PPID; echo done")],
                      rid=f"hup-race-{attempt}")
        out = executor.run(doc)
        end = out.one("step_end")
        assert (end["status"], end["rc"], end["stdout"]) == ("changed", 0, "done\n"), end
        assert out.rc == 0


def test_a_request_id_never_runs_twice(executor: Executor, tmp_path: Any) -> None:
    flag = tmp_path / "count"
    doc = request([step("append", "shell", cmd=f"echo x >> {flag}")], rid="once")
    assert executor.run(doc).rc == 0
    again = executor.run(doc)
    assert again.rc == protocol.EXIT_BAD_REQUEST
    assert again.one("error")["code"] == "request_reused"
    assert flag.read_text() == "x\n"
    journaled = _journal(executor, "once")
    assert [e["event"] for e in journaled] == ["hello", "step_start", "step_end", "done"]


def test_follow_waits_for_a_detached_sequence(executor: Executor, marker: str) -> None:
    running = _start(executor, _short_sequence(marker, "followed"))
    follower = executor.start(["--journal", "followed", "--follow"])
    assert follower.proc.stdin is not None
    follower.proc.stdin.close()
    done = follower.read_until("done")
    assert follower.finish()[0] == 0
    assert done["exit"] == 0
    running.finish()
    assert follower.events == _journal(executor, "followed")


def test_a_cancel_sent_to_the_follower_stops_the_sequence(executor: Executor,
                                                          marker: str) -> None:
    running = _start(executor, _long_sequence(marker, "follow-cancel"))
    assert running.proc.stdout is not None
    running.proc.stdout.close()  # the first controller is gone: the sequence detached
    follower = executor.start(["--journal", "follow-cancel", "--follow"])
    follower.read_until("step_start")
    assert follower.proc.stdin is not None
    follower.proc.stdin.write(b'{"cancel": "Ctrl-C"}\n')
    follower.proc.stdin.flush()
    done = follower.read_until("done")
    assert follower.finish()[0] == 0
    assert done["interrupted"] is True and "SIGTERM" in done["reason"]
    assert running.finish()[0] == protocol.EXIT_FAILED
    assert wait_gone(marker) == []


def test_follow_says_when_the_executor_died(executor: Executor, marker: str) -> None:
    running = _start(executor, _long_sequence(marker, "died"))
    running.signal(signal.SIGKILL)
    running.finish()
    follower = executor.run(b"", args=["--journal", "died", "--follow"])
    assert follower.rc == protocol.EXIT_FAILED
    assert follower.events[-1]["code"] == "executor_died"
    assert [e["event"] for e in follower.events[:-1]] == [
        "hello", "step_start", "step_end", "step_start"]


def test_resume_skips_finished_steps_and_still_undoes_them(executor: Executor,
                                                          tmp_path: Any) -> None:
    flag = tmp_path / "made"
    steps = [
        dict(step("make", "file", path=str(flag), content="x"),
             undo={"action": "file", "args": {"path": str(flag), "state": "absent"}}),
        step("boom", "command", argv=["false"]),
    ]
    flag.write_text("x")  # what the first attempt made before its executor died
    doc = request(steps, rid="resumed", on_failure="rollback",
                  resume=[{"index": 0, "status": "changed", "data": {}}])
    out = executor.run(doc)
    assert [e["name"] for e in out.of("step_start")] == ["boom"]
    done = out.one("done")
    assert done["resumed"] == 1 and done["rolled_back"] is True
    assert done["counts"]["changed"] == 1 and done["counts"]["failed"] == 1
    assert not flag.exists()


def test_gone_runs_the_rollback(executor: Executor, marker: str, tmp_path: Any) -> None:
    name, value = marker.split("=", 1)
    flag = tmp_path / "flag"
    doc = request(
        [
            dict(step("make", "file", path=str(flag), content="x"),
                 undo={"action": "file", "args": {"path": str(flag), "state": "absent"}}),
            step("long", "shell", cmd="sleep 300", env={name: value}),
        ],
        rid="gone-rollback",
        on_failure="rollback",
    )
    running = executor.start()
    running.send(doc)
    running.read_until("step_end")
    running.read_until("step_start")
    running.signal(signal.SIGTERM)
    done = running.read_until("done")
    running.finish()
    assert done["rolled_back"] is True
    kinds = [e["event"] for e in running.events]
    assert kinds[-5:] == ["rollback_start", "rollback_step_start", "rollback_step_end",
                          "rollback_end", "done"]
    assert running.events[-3]["status"] == "changed"
    assert not flag.exists()


def test_journal_list_and_unknown_journal(executor: Executor) -> None:
    executor.run(request([step("a", "command", argv=["true"])], rid="listed/one"))
    executor.run(request([step("a", "command", argv=["false"])], rid="listed-two"))
    out = executor.run(b"", args=["--journal-list"], events=False)
    assert out.rc == 0
    entries = {e["id"]: e for e in map(json.loads, out.stdout.splitlines())}
    assert entries["listed/one"]["status"] == "changed" and entries["listed/one"]["exit"] == 0
    assert entries["listed-two"]["status"] == "failed" and entries["listed-two"]["exit"] == 1
    missing = executor.run(b"", args=["--journal", "no-such-request"])
    assert missing.rc == 2 and missing.one("error")["code"] == "unknown_journal"


def test_journal_equals_the_stream(any_executor: Executor) -> None:
    doc = request([step("a", "command", argv=["echo", "hi"])], rid="same")
    live = any_executor.run(doc)
    journaled = any_executor.run(b"", args=["--journal", "same"])
    assert journaled.events == live.events
    assert parse_events(journaled.stdout) == live.events
