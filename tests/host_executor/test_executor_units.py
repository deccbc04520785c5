"""In-process checks of the executor's small pieces."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from host_executor import fsutil, identity, journal, paths, protocol
from host_executor.actions import ACTIONS, LazyHandler, check_args, handler_for, register
from host_executor.step import CancelToken, StepContext


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(paths.ENV_CACHE_DIR, str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_safe_name_keeps_names_distinct() -> None:
    assert paths.safe_name("req-1_a.b") == "req-1_a.b"
    names = ["a/b", "a_b", "a b", "../x", ".hidden", "", "x" * 500, "é"]
    safe = [paths.safe_name(n) for n in names]
    assert len(set(safe)) == len(names)
    for name in safe:
        assert "/" not in name and not name.startswith(".") and 0 < len(name) <= 130


def test_parse_mode() -> None:
    assert fsutil.parse_mode("0644") == 0o644
    assert fsutil.parse_mode("755") == 0o755
    assert fsutil.parse_mode("0o1777") == 0o1777
    assert fsutil.parse_mode(420) == 0o644
    assert fsutil.parse_mode(None) is None
    for bad in ("rwx", "0999", 0o17777, True, 1.5, "-1"):
        with pytest.raises(protocol.ProtocolError):
            fsutil.parse_mode(bad)


def test_content_diff() -> None:
    diff = fsutil.content_diff("/f", b"a\nb\n", b"a\nc")
    assert diff.startswith("--- /f (before)\n+++ /f (after)\n")
    assert "-b\n+c\n\\ No newline at end of file\n" in diff
    assert "binary" in fsutil.content_diff("/f", b"\0\1", b"x")
    assert "too large" in fsutil.content_diff("/f", b"x" * (fsutil.DIFF_INPUT_LIMIT + 1), b"")
    big = "".join(f"line {i}\n" for i in range(20000)).encode()
    assert len(fsutil.content_diff("/f", None, big)) <= fsutil.DIFF_OUTPUT_LIMIT + 100


def test_atomic_write_cleans_up_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "f"
    with pytest.raises(Exception, match="does not exist"):
        fsutil.atomic_write(str(target), b"x", 0o644)
    fsutil.atomic_write(str(tmp_path / "f"), b"data", 0o640)
    assert (tmp_path / "f").read_bytes() == b"data"
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


def test_journal_prune_and_summaries(cache: Path) -> None:
    log = journal.Journal("old-one")
    log.append(protocol.encode_event({"event": "hello", "id": "old-one"}), "hello")
    log.append(b'{"event":"done","status":"ok","exit":0}\n', "done")
    log.close()
    fresh = journal.Journal("fresh/one")
    fresh.append(protocol.encode_event({"event": "hello", "id": "fresh/one"}), "hello")
    fresh.append(b'{"event":"step_e', "step_end")  # cut short by a crash
    fresh.close()
    week_ago = time.time() - journal.MAX_AGE - 60
    os.utime(log.path, (week_ago, week_ago))
    summaries = {s["id"]: s for s in journal.list_journals()}
    assert summaries["old-one"]["status"] == "ok" and summaries["old-one"]["exit"] == 0
    assert summaries["fresh/one"]["status"] == "incomplete"
    assert journal.prune_if_due() == 1
    assert journal.prune_if_due() == 0  # not due again for an hour
    assert journal.prune() == 0
    assert [s["id"] for s in journal.list_journals()] == ["fresh/one"]
    with pytest.raises(Exception, match="no journal"):
        journal.read_journal("old-one")


def test_digest_from_name() -> None:
    assert identity.digest_from_name("/x/hostplane-executor-abc123.pyz") == "abc123"
    assert identity.digest_from_name("/x/executor.pyz") is None
    assert identity.digest_from_name("hostplane-executor-.pyz") is None
    assert identity.executor_digest() == "dev"  # a source tree


def test_dispatch_is_lazy_and_extensible() -> None:
    assert set(ACTIONS) >= {"command", "shell", "file", "wait", "facts"}
    assert all(isinstance(h, LazyHandler) for h in ACTIONS.values())
    register("libvirt_test_action", "host_executor.actions.facts", "run_facts")
    try:
        ctx = StepContext(0, "t", "libvirt_test_action")
        result = handler_for("libvirt_test_action")({"gather": ["kvm"]}, ctx)
        assert result.status == "ok" and set(result.data) == {"kvm"}
    finally:
        del ACTIONS["libvirt_test_action"]
    with pytest.raises(protocol.ProtocolError) as err:
        check_args("file", {"path": "/x", "mode": "bad"}, "undo.args")
    assert err.value.field == "undo.args.mode"


def test_cancel_token() -> None:
    token = CancelToken()
    assert not token.wait(0.01)
    token.cancel("first")
    token.cancel("second")
    assert token.is_set() and token.reason == "first" and token.wait(0)


def test_jsonfast_matches_json() -> None:
    import json

    from host_executor import jsonfast

    docs = [{"a": [1, 2.5, -0.0, 1e300, None, True, False, "x\u00e9\u2603\ud83d\ude00\n\"\\"],
             "b": {"c": {}}, "": [[]]}, [], {"nan": float("inf")}]
    for doc in docs:
        assert jsonfast.dumps(doc) == json.dumps(doc, ensure_ascii=True, separators=(",", ":"))
        text = json.dumps(doc).encode()
        assert jsonfast.loads(text) == json.loads(text)
        assert jsonfast.loads(b" \n" + text + b"\r\n ") == json.loads(text)
    for bad in (b'{"a": 1', b'{"a": 1} x', b'{"a": 01}', b"\xff{}", b"", b"{'a': 1}"):
        with pytest.raises(ValueError):
            jsonfast.loads(bad)
    with pytest.raises(TypeError, match="not JSON serializable"):
        jsonfast.dumps({"a": object()})
    assert jsonfast.loads('{"a": "\u00e9"}'.encode("utf-16")) == {"a": "\u00e9"}  # as json
    assert jsonfast.loads(b'{"n": NaN, "s": "\xed\xa0\x80"}')["s"] == "\ud800"
