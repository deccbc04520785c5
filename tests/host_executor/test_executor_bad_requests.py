"""Any input that is not a runnable request: an ``error`` event, exit 2, never a traceback."""

from __future__ import annotations

import json

import pytest
from executor_harness import Executor, request, step

from host_executor import protocol

GOOD = request([step("a", "command", argv=["true"])])


def _doc(**changes: object) -> bytes:
    doc = dict(GOOD)
    doc.update(changes)
    return json.dumps(doc).encode()


BAD_INPUTS = {
    "empty stdin": b"",
    "only whitespace": b"  \n\t",
    "truncated json": json.dumps(GOOD).encode()[:-7],
    "not json": b"hello executor",
    "not an object": b"[1, 2, 3]",
    "a bare string": b'"run everything"',
    "invalid utf-8": b'{"protocol": 1, "id": "\xff\xfe", "steps": []}',
    "deeply nested": b"[" * 100000 + b"]" * 100000,
    "wrong version": _doc(protocol=999),
    "missing version": json.dumps({"id": "x", "steps": []}).encode(),
    "unknown action": _doc(steps=[step("a", "frobnicate")]),
    "bad arg type": _doc(steps=[step("a", "command", argv="ls -l")]),
    "argv with a number": _doc(steps=[step("a", "command", argv=["sleep", 1])]),
    "unknown argument": _doc(steps=[step("a", "shell", cmd="true", shel=True)]),
    "missing required": _doc(steps=[step("a", "shell")]),
    "step not a mapping": _doc(steps=["ls"]),
    "steps not a list": _doc(steps={"a": 1}),
    "unknown request key": _doc(extra=1),
    "bad on_failure": _doc(on_failure="panic"),
    "check not bool": _doc(check="yes"),
    "negative output_limit": _doc(output_limit=-1),
    "deadline not a number": _doc(deadline="tomorrow"),
    "lock timeout not a number": _doc(lock={"name": "x", "timeout": "long"}),
    "env value not a string": _doc(steps=[step("a", "command", argv=["env"], env={"A": 1})]),
    "rc list of strings": _doc(steps=[step("a", "command", argv=["true"], rc=["0"])]),
    "relative file path": _doc(steps=[step("a", "file", path="etc/motd", content="x")]),
    "bad mode": _doc(steps=[step("a", "file", path="/tmp/x", mode="rw-r--r--")]),
    "content and content_b64": _doc(steps=[step("a", "file", path="/tmp/x", content="a", content_b64="YQ==")]),
    "bad base64": _doc(steps=[step("a", "file", path="/tmp/x", content_b64="###")]),
    "bad regex": _doc(steps=[step("a", "wait", path="/tmp/x", pattern="(")]),
    "regex too deep": _doc(steps=[step("a", "wait", path="/tmp/x", pattern="(" * 2000 + ")" * 2000)]),
    "regex too large": _doc(steps=[step("a", "wait", path="/tmp/x", pattern="a{4294967296}")]),
    "wait on nothing": _doc(steps=[step("a", "wait", timeout=1)]),
    "bad undo": _doc(steps=[dict(step("a", "command", argv=["true"]), undo={"action": "command", "args": {}})]),
    "unknown facts group": _doc(steps=[step("a", "facts", gather=["gpu"])]),
}


# Each would pass a naive check and fail inside the step (a traceback) or wait forever.
# (request field, step index, offending value as JSON text)
FIELD_ERRORS = {
    "protocol true": ("protocol", None, '"protocol": true'),
    "steps null": ("steps", None, '"steps": null'),
    "nan step timeout": ("timeout", 0, '"timeout": NaN'),
    "inf step timeout": ("timeout", 0, '"timeout": Infinity'),
    "nan undo timeout": ("undo.timeout", 0, '"undo": {"action": "command", "args": {"argv": ["true"]}, "timeout": NaN}'),
    "nan deadline": ("deadline", None, '"deadline": NaN'),
    "inf deadline": ("deadline", None, '"deadline": -Infinity'),
    "nan lock timeout": ("lock.timeout", None, '"lock": {"name": "l", "timeout": NaN}'),
    "nul in argv": ("args.argv[1]", 0, '"args": {"argv": ["echo", "a\\u0000b"]}'),
    "surrogate in argv": ("args.argv[1]", 0, '"args": {"argv": ["echo", "a\\ud800b"]}'),
    "nul in env value": ("args.env.A", 0, '"args": {"argv": ["env"], "env": {"A": "a\\u0000"}}'),
    "nul in env name": ("args.env.A\x00", 0, '"args": {"argv": ["env"], "env": {"A\\u0000": "a"}}'),
    "list in env": ("args.env.A", 0, '"args": {"argv": ["env"], "env": {"A": [1, 2]}}'),
    "surrogate in cwd": ("args.cwd", 0, '"args": {"argv": ["pwd"], "cwd": "/\\udc80"}'),
    "nul in file path": ("args.path", 0, '"action": "file", "args": {"path": "/tmp/a\\u0000b"}'),
    "owner id too large": ("args.owner", 0, '"action": "file", "args": {"path": "/tmp/x", "owner": 1180591620717411303424}'),
    "negative group id": ("args.group", 0, '"action": "file", "args": {"path": "/tmp/x", "group": -7}'),
    "owner not ascii digits": ("args.owner", 0, '"action": "file", "args": {"path": "/tmp/x", "owner": "\\u00b2"}'),
    "surrogate in content": ("args.content", 0, '"action": "file", "args": {"path": "/tmp/x", "content": "\\udfff"}'),
}


def _with(text: str, step_level: bool) -> bytes:
    """GOOD with ``text`` (JSON that ``json.dumps`` would not write, like NaN) spliced in."""
    keys = {text.split('"')[1]}  # the first key; "action" brings its own "args"
    if not step_level:
        head = json.dumps({k: v for k, v in GOOD.items() if k not in keys})
        return (head[:-1] + ", " + text + "}").encode()
    one = {"name": "s", "action": "command", "args": {"argv": ["true"]}}
    if "action" in keys:
        keys.add("args")
    head = json.dumps({k: v for k, v in one.items() if k not in keys})
    body = json.dumps({k: v for k, v in GOOD.items() if k != "steps"})
    return (body[:-1] + ', "steps": [' + head[:-1] + ", " + text + "}]}").encode()


@pytest.mark.parametrize("name", sorted(FIELD_ERRORS))
def test_field_errors_name_the_field_and_step(executor: Executor, name: str) -> None:
    field, index, text = FIELD_ERRORS[name]
    out = executor.run(_with(text, index is not None))
    assert out.rc == protocol.EXIT_BAD_REQUEST, out
    assert "Traceback" not in out.stderr and b"Traceback" not in out.stdout
    error = out.one("error")
    assert error["field"] == field, error
    assert error.get("step_index") == index, error
    if index is not None:
        assert error["step_name"] == "s" and "step 1 ('s')" in error["message"]


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_request_is_an_error_event(executor: Executor, name: str) -> None:
    out = executor.run(BAD_INPUTS[name])
    assert out.rc == protocol.EXIT_BAD_REQUEST, out
    assert "Traceback" not in out.stderr
    assert [e["event"] for e in out.events] == ["hello", "error"]
    error = out.events[-1]
    assert error["code"] in ("bad_request", "protocol_mismatch")
    assert error["exit"] == protocol.EXIT_BAD_REQUEST
    assert error["message"]
    assert out.one("hello")["protocol"] == protocol.PROTOCOL_VERSION


def test_bad_inputs_from_the_zipapp_too(any_executor: Executor) -> None:
    for name in ("truncated json", "wrong version", "bad arg type", "empty stdin"):
        out = any_executor.run(BAD_INPUTS[name])
        assert out.rc == 2 and "Traceback" not in out.stderr, (name, out)
        assert out.events[-1]["event"] == "error"


def test_version_mismatch_names_both_versions(executor: Executor) -> None:
    out = executor.run(_doc(protocol=7))
    error = out.one("error")
    assert error["code"] == "protocol_mismatch"
    assert "7" in error["message"] and str(protocol.PROTOCOL_VERSION) in error["message"]
    assert error["protocol"] == protocol.PROTOCOL_VERSION
    assert error["field"] == "protocol"


def test_error_names_the_step_and_field(executor: Executor) -> None:
    doc = request([step("ok", "command", argv=["true"]), step("broken", "command", argv="ls")])
    error = executor.run(doc).one("error")
    assert error["step_index"] == 1 and error["step_name"] == "broken"
    assert error["field"] == "args.argv"
    assert "step 2 ('broken')" in error["message"]


def test_undo_error_names_the_undo_field(executor: Executor) -> None:
    bad = dict(step("a", "command", argv=["true"]), undo={"action": "command", "args": {"argv": "x"}})
    error = executor.run(request([bad])).one("error")
    assert error["field"] == "undo.args.argv"


def test_nothing_runs_when_a_later_step_is_bad(executor: Executor, tmp_path: object) -> None:
    target = f"{tmp_path}/made"
    doc = request([step("a", "command", argv=["touch", target]), step("b", "nope")])
    out = executor.run(doc)
    assert out.rc == 2
    assert not out.of("step_start")
    import os

    assert not os.path.exists(target)


def test_hello_carries_the_request_id_even_for_a_bad_request(executor: Executor) -> None:
    out = executor.run(_doc(steps=[step("a", "nope")]))
    assert out.one("hello")["id"] == GOOD["id"]
    assert out.one("error")["id"] == GOOD["id"]


def test_unknown_cli_arguments(executor: Executor) -> None:
    out = executor.run(b"", args=["--frobnicate"])
    assert out.rc == 2 and out.one("error")["code"] == "usage"
    assert "Traceback" not in out.stderr


def test_version_flag(any_executor: Executor) -> None:
    out = any_executor.run(b"", args=["--version"], events=False)
    assert out.rc == 0
    info = json.loads(out.stdout)
    assert info["protocol"] == protocol.PROTOCOL_VERSION
    assert info["digest"] == ("dev" if any_executor.zipapp is None else info["digest"])


def test_a_refused_request_runs_when_sent_again_and_its_journal_starts_over(
    executor: Executor,
) -> None:
    bad = request([step("a", "command", argv="true")], rid="refused-then-fixed")
    assert executor.run(bad).rc == 2
    journal = executor.cache / "journal" / "refused-then-fixed.jsonl"
    assert b'"event":"error"' in journal.read_bytes()
    fixed = request([step("a", "command", argv=["true"])], rid="refused-then-fixed")
    out = executor.run(fixed)
    assert out.rc == 0 and out.of("error") == []
    kinds = [json.loads(line)["event"] for line in journal.read_bytes().splitlines()]
    assert kinds == ["hello", "step_start", "step_end", "done"]
