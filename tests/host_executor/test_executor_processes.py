"""command/shell as processes: process groups, timeouts, output caps, exact bytes."""

from __future__ import annotations

import time

from executor_harness import Executor, request, step, wait_gone

from host_executor import protocol


def test_timeout_kills_the_whole_process_group(executor: Executor, marker: str) -> None:
    name, value = marker.split("=", 1)
    # The marker is in sh's argv ($0) and in everyone's environment.
    argv = ["sh", "-c", "sleep 300 & sleep 300", marker]
    doc = request([dict(step("sleepers", "command", argv=argv, env={name: value}), timeout=1)])
    started = time.monotonic()
    out = executor.run(doc)
    assert time.monotonic() - started < 10
    end = out.one("step_end")
    assert end["status"] == "failed"
    assert end["msg"].startswith("timed out after 1 s")
    assert end["data"]["timed_out"] is True
    assert out.rc == protocol.EXIT_FAILED
    assert wait_gone(marker, timeout=5) == []


def test_timeout_escalates_to_sigkill(executor: Executor, marker: str) -> None:
    name, value = marker.split("=", 1)
    cmd = "trap '' TERM; sleep 300 & trap '' TERM; sleep 300"
    doc = request([dict(step("stubborn", "shell", cmd=cmd, env={name: value}), timeout=0.5)])
    out = executor.run(doc)
    assert out.one("step_end")["status"] == "failed"
    assert wait_gone(marker, timeout=5) == []


def test_output_is_capped_and_flagged_while_the_pipe_drains(executor: Executor) -> None:
    # 8 MiB through a 1 KiB cap: the child must never block on a full pipe.
    cmd = "head -c 8388608 /dev/zero | tr '\\0' 'a'; head -c 3000 /dev/zero | tr '\\0' 'b' >&2"
    out = executor.run(request([step("chatty", "shell", cmd=cmd)], output_limit=1024))
    end = out.one("step_end")
    assert end["status"] == "changed"
    assert end["stdout"] == "a" * 1024 and end["stdout_truncated"] is True
    assert end["stderr"] == "b" * 1024 and end["stderr_truncated"] is True


def test_output_at_the_limit_is_not_truncated(executor: Executor) -> None:
    out = executor.run(request([step("exact", "shell", cmd="printf 12345")], output_limit=5))
    end = out.one("step_end")
    assert end["stdout"] == "12345" and end["stdout_truncated"] is False


def test_non_utf8_output_arrives_exact(any_executor: Executor) -> None:
    raw = bytes(range(256))
    cmd = "printf '" + "".join(f"\\{b:03o}" for b in raw) + "'"
    out = any_executor.run(request([step("bytes", "shell", cmd=cmd + "; " + cmd + " >&2")]))
    end = out.one("step_end")
    assert protocol.output_bytes(end, "stdout") == raw
    assert protocol.output_bytes(end, "stderr") == raw
    assert "stdout_b64" in end


def test_utf8_output_has_no_b64(executor: Executor) -> None:
    out = executor.run(request([step("utf8", "command", argv=["printf", "h\u00e9llo \u2603"])]))
    end = out.one("step_end")
    assert end["stdout"] == "h\u00e9llo \u2603" and "stdout_b64" not in end


def test_background_daemon_holding_the_pipes_does_not_hang_the_step(
    executor: Executor, marker: str
) -> None:
    name, value = marker.split("=", 1)
    doc = request([step("daemon", "shell", cmd="sleep 30 & echo started", env={name: value})])
    started = time.monotonic()
    out = executor.run(doc)
    assert time.monotonic() - started < 10
    end = out.one("step_end")
    assert end["status"] == "changed" and end["stdout"] == "started\n"


def test_stdin_is_fed_and_never_the_executors(executor: Executor) -> None:
    doc = request([
        step("fed", "command", argv=["cat"], stdin="line one\nline two\n"),
        step("not fed", "command", argv=["cat"]),
    ])
    out = executor.run(doc)
    fed, unfed = out.ends
    assert fed["stdout"] == "line one\nline two\n"
    assert unfed["stdout"] == "" and unfed["status"] == "changed"


def test_missing_program_fails_the_step(executor: Executor) -> None:
    out = executor.run(request([step("nope", "command", argv=["/no/such/program"])]))
    end = out.one("step_end")
    assert end["status"] == "failed" and "cannot run /no/such/program" in end["msg"]
    assert end["rc"] == 127
