"""The request's ``redact`` values never reach stdout, the journal or the cache dir."""

from __future__ import annotations

import base64
import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from executor_harness import REPO, Executor, Outcome, request, step

from host_executor import protocol
from host_executor.redact import MASK, Redactor

SECRET = "s3cr'et \"Pa$$\" \u00fc"


def leaked_forms(secret: str = SECRET) -> list[bytes]:
    """What a leak looks like in a JSON Lines file (ASCII-escaped) or in raw bytes."""
    raw = secret.encode()
    b64 = base64.b64encode(raw)
    return [raw, b64, b64.rstrip(b"="), json.dumps(secret)[1:-1].encode(),
            json.dumps(json.dumps(secret))[3:-3].encode(), shlex.quote(secret).encode()]


def assert_clean(blob: bytes, where: str, secret: str = SECRET) -> None:
    for form in leaked_forms(secret):
        assert form not in blob, (where, form, blob[:2000])


def assert_no_secret(out: Outcome, cache: Path, secret: str = SECRET) -> None:
    """Not on stdout, not in any file under the cache dir, not inside any ``*_b64``."""
    assert_clean(out.stdout, "stdout", secret)
    files = [p for p in cache.rglob("*") if p.is_file()]
    assert files, "the executor journaled nothing"
    for path in files:
        assert_clean(path.read_bytes(), str(path), secret)
        assert_clean(str(path).encode(), "file name", secret)
    for event in out.events:
        for key, value in event.items():
            if key.endswith("_b64"):
                assert secret.encode() not in base64.b64decode(value), (key, event)


def secret_request(steps: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    return request(steps, redact=[SECRET], **kw)


def test_outputs_are_masked_in_every_form(executor: Executor) -> None:
    q = shlex.quote(SECRET)
    cmd = (f"echo {q}; printf %s {q} | base64; echo {shlex.quote(q)}; echo {q} >&2; "
           f"printf '\\377 %s\\n' {q}; printf '\\376 %s' {q} >&2")
    out = executor.run(secret_request([step("say " + SECRET, "shell", cmd=cmd)]))
    assert out.rc == protocol.EXIT_OK, out.events
    end = out.one("step_end")
    assert "stdout_b64" in end and "stderr_b64" in end  # exact bytes, masked before encoding
    assert out.one("step_start")["name"] == "say " + MASK
    assert protocol.output_bytes(end, "stderr").endswith(MASK.encode())
    assert MASK in end["stdout"] and MASK in end["stderr"]
    assert_no_secret(out, executor.cache)


def test_failed_step_msg_diff_and_rollback_are_masked(executor: Executor, tmp_path: Path) -> None:
    target = tmp_path / "conf"
    undo = {"action": "shell", "args": {"cmd": f"echo undo {shlex.quote(SECRET)}; rm -f {target}"}}
    steps = [
        dict(step("write", "file", path=str(target), content=f"password={SECRET}\n"), undo=undo),
        step("fail", "command", argv=["/nonexistent/" + SECRET]),
    ]
    out = executor.run(secret_request(steps, on_failure="rollback", diff=True))
    assert out.rc == protocol.EXIT_FAILED
    ends = out.of("step_end")
    assert MASK in ends[0]["diff"] and MASK in ends[1]["msg"]
    assert MASK in out.one("rollback_step_end")["stdout"]
    assert out.one("rollback_end")["status"] == "ok"
    assert_no_secret(out, executor.cache)


def test_bad_request_error_and_lock_file_are_masked(executor: Executor) -> None:
    bad = secret_request([{"name": SECRET, "action": "command", "args": {"argv": []}}])
    out = executor.run(bad)
    assert out.rc == protocol.EXIT_BAD_REQUEST
    assert MASK in out.one("error")["message"]
    locked = secret_request([step("t", "command", argv=["true"])], rid="req-2",
                            lock={"name": "vm-" + SECRET, "timeout": 5})
    out2 = executor.run(locked)
    assert out2.rc == protocol.EXIT_OK
    assert_no_secret(out, executor.cache)
    assert_no_secret(out2, executor.cache)


def test_redact_must_be_a_list_of_strings(executor: Executor) -> None:
    out = executor.run(dict(request([step("t", "command", argv=["true"])]), redact="x"))
    assert out.rc == protocol.EXIT_BAD_REQUEST
    assert out.one("error")["field"] == "redact"


def test_no_redact_costs_no_import(tmp_path: Path) -> None:
    doc = json.dumps(request([step("t", "command", argv=["true"])])).encode()
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "host_executor"], input=doc,
                          capture_output=True, cwd=str(REPO), timeout=60,
                          env={"HOSTPLANE_CACHE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stdout
    assert b"host_executor.redact" not in proc.stderr
    assert b"host_executor.runner" in proc.stderr  # importtime did report the run's imports


def test_redactor_keeps_protocol_fields_and_masks_cut_tails() -> None:
    red = Redactor(["ok", "hunter22"])
    event = {"event": "step_end", "status": "ok", "rc": 0, "msg": "ok then",
             "stdout": "x hunter", "stdout_truncated": True, "data": {"hunter22": 1}}
    out = red.event(event)
    assert out["status"] == "ok" and out["event"] == "step_end"
    assert out["msg"] == MASK + " then"
    assert out["stdout"] == "x " + MASK  # cut at output_limit halfway through the secret
    assert out["data"] == {MASK: 1}
    raw = b"\xff pre-hunter22-post"
    fields = protocol.encode_output(raw, 100, "stdout")
    masked = red.event(fields)
    assert base64.b64decode(masked["stdout_b64"]) == b"\xff pre-" + MASK.encode() + b"-post"
    assert Redactor(["1234"]).value({"n": 1234, "b": True}) == {"n": MASK, "b": True}
