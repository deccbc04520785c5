"""file, wait, facts, and the command guards: idempotency, check mode, diff."""

from __future__ import annotations

import base64
import os
import socket
import time
from pathlib import Path
from typing import Any

from executor_harness import Executor, again, request, step


def _tree(root: Path) -> dict[str, Any]:
    """Everything about a folder that an action could change."""
    snap: dict[str, Any] = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        content = path.read_bytes() if path.is_file() and not path.is_symlink() else None
        snap[str(path)] = (st.st_mode, st.st_uid, st.st_gid, content, st.st_mtime_ns)
    return snap


def test_file_create_then_idempotent(executor: Executor, tmp_path: Path) -> None:
    target = tmp_path / "motd"
    doc = request([step("motd", "file", path=str(target), content="hi\n", mode="0640")])
    first = executor.run(doc).one("step_end")
    assert first["status"] == "changed" and first["data"]["changes"] == ["create"]
    assert target.read_text() == "hi\n" and target.stat().st_mode & 0o7777 == 0o640
    second = executor.run(again(doc)).one("step_end")
    assert second["status"] == "ok" and second["data"]["changes"] == []


def test_file_mode_only_change(executor: Executor, tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_text("same")
    target.chmod(0o600)
    end = executor.run(request([step("f", "file", path=str(target), content="same", mode=0o644)])
                       ).one("step_end")
    assert end["status"] == "changed" and end["data"]["changes"] == ["mode 0600 -> 0644"]
    assert target.stat().st_mode & 0o7777 == 0o644


def test_file_rewrite_keeps_mode_and_is_a_new_inode(executor: Executor, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    target = work / "f"
    target.write_text("old")
    target.chmod(0o604)
    inode = target.stat().st_ino
    executor.run(request([step("f", "file", path=str(target), content="new")]))
    assert target.read_text() == "new"
    assert target.stat().st_mode & 0o7777 == 0o604
    assert target.stat().st_ino != inode  # replaced by rename, never written in place
    assert [p.name for p in work.iterdir()] == ["f"]  # no temp file left behind


def test_file_content_b64_exact_bytes(executor: Executor, tmp_path: Path) -> None:
    raw = bytes(range(256)) * 3
    target = tmp_path / "blob"
    doc = request([step("blob", "file", path=str(target),
                        content_b64=base64.b64encode(raw).decode())], diff=True)
    end = executor.run(doc).one("step_end")
    assert target.read_bytes() == raw
    assert "binary content differs" in end["diff"]


def test_file_check_mode_changes_nothing(any_executor: Executor, tmp_path: Path) -> None:
    tmp_path = tmp_path / "work"  # apart from the executor's cache, which does change
    tmp_path.mkdir()
    (tmp_path / "keep").write_text("old\n")
    (tmp_path / "keep").chmod(0o600)
    (tmp_path / "gone").mkdir()
    (tmp_path / "gone" / "inner").write_text("x")
    before = _tree(tmp_path)
    doc = request(
        [
            step("new", "file", path=str(tmp_path / "new"), content="x"),
            step("keep", "file", path=str(tmp_path / "keep"), content="new\n", mode="0644"),
            step("dir", "file", path=str(tmp_path / "a" / "b"), state="directory"),
            step("gone", "file", path=str(tmp_path / "gone"), state="absent"),
            step("run", "command", argv=["touch", str(tmp_path / "touched")]),
        ],
        check=True,
        diff=True,
    )
    out = any_executor.run(doc)
    assert out.rc == 0
    assert _tree(tmp_path) == before
    new, keep, made, gone, run = out.ends
    assert all(e["status"] == "changed" for e in out.ends)
    assert new["msg"] == "would change: create"
    assert keep["data"]["changes"] == ["content", "mode 0600 -> 0644"]
    assert "-old\n+new\n" in keep["diff"]
    assert made["data"]["changes"] == ["create"]
    assert gone["data"]["changes"] == ["remove"]
    assert run["msg"] == "would run"


def test_diff_only_when_asked(executor: Executor, tmp_path: Path) -> None:
    doc = request([step("f", "file", path=str(tmp_path / "f"), content="a\n")])
    assert "diff" not in executor.run(doc).one("step_end")


def test_directory_and_absent(executor: Executor, tmp_path: Path) -> None:
    folder = tmp_path / "x" / "y"
    doc = request([step("d", "file", path=str(folder), state="directory", mode="0750")])
    assert executor.run(doc).one("step_end")["status"] == "changed"
    assert folder.is_dir() and folder.stat().st_mode & 0o777 == 0o750
    assert executor.run(again(doc)).one("step_end")["status"] == "ok"
    (folder / "file").write_text("x")
    gone = request([step("rm", "file", path=str(tmp_path / "x"), state="absent")])
    assert executor.run(gone).one("step_end")["status"] == "changed"
    assert not (tmp_path / "x").exists()
    assert executor.run(again(gone)).one("step_end")["status"] == "ok"


def test_directory_over_a_file_fails(executor: Executor, tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    end = executor.run(request([step("d", "file", path=str(tmp_path / "f"), state="directory")])
                       ).one("step_end")
    assert end["status"] == "failed" and "not a directory" in end["msg"]


def test_owner_and_group_by_name_and_id(executor: Executor, tmp_path: Path) -> None:
    import grp
    import pwd

    me = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    target = tmp_path / "owned"
    doc = request([step("f", "file", path=str(target), content="x", owner=me, group=group),
                   step("g", "file", path=str(target), owner=os.getuid(), group=str(os.getgid()))])
    out = executor.run(doc)
    assert [e["status"] for e in out.ends] == ["changed", "ok"]
    unknown = executor.run(request([step("f", "file", path=str(target), owner="no-such-user-x")]))
    assert "unknown user 'no-such-user-x'" in unknown.one("step_end")["msg"]


def test_symlink_is_followed(executor: Executor, tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.write_text("old")
    link = tmp_path / "link"
    link.symlink_to(real)
    executor.run(request([step("f", "file", path=str(link), content="new")]))
    assert link.is_symlink() and real.read_text() == "new"


def test_command_guards(executor: Executor, tmp_path: Path) -> None:
    exists = tmp_path / "exists"
    exists.write_text("")
    doc = request([
        step("creates", "command", argv=["false"], creates=str(exists)),
        step("creates glob", "command", argv=["false"], creates=str(tmp_path / "ex*")),
        step("removes", "command", argv=["false"], removes=str(tmp_path / "missing")),
        step("unless str", "command", argv=["false"], unless=f"test -e {exists}"),
        step("unless argv", "command", argv=["false"], unless=["test", "-e", str(exists)]),
        step("unless fails", "shell", cmd="echo ran", unless="false"),
        step("creates missing", "shell", cmd="echo ran", creates=str(tmp_path / "missing")),
    ])
    out = executor.run(doc)
    statuses = [(e["name"], e["status"]) for e in out.ends]
    assert statuses == [("creates", "ok"), ("creates glob", "ok"), ("removes", "ok"),
                        ("unless str", "ok"), ("unless argv", "ok"), ("unless fails", "changed"),
                        ("creates missing", "changed")]
    assert out.ends[0]["msg"] == f"not run: {exists} exists"


def test_unless_runs_in_check_mode(executor: Executor, tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    doc = request([step("guarded", "command", argv=["false"], unless=f"touch {flag}; true")],
                  check=True)
    end = executor.run(doc).one("step_end")
    assert end["status"] == "ok" and flag.exists()  # the probe ran, the command did not


def test_rc_env_cwd(executor: Executor, tmp_path: Path) -> None:
    doc = request([
        step("rc", "shell", cmd="exit 3", rc=[0, 3]),
        step("changed_when", "shell", cmd="exit 2", rc=[0, 2], changed_when_rc=0),
        step("env", "shell", cmd='printf "%s" "$GREETING"', env={"GREETING": "hello"}),
        step("cwd", "command", argv=["pwd"], cwd=str(tmp_path)),
        step("bash", "shell", cmd="echo $BASH_VERSION", executable="/bin/bash"),
    ])
    rc, changed_when, env, cwd, bash = executor.run(doc).ends
    assert rc["status"] == "changed" and rc["rc"] == 3
    assert changed_when["status"] == "ok" and changed_when["rc"] == 2
    assert env["stdout"] == "hello"
    assert cwd["stdout"].strip() == str(tmp_path)
    assert bash["stdout"].strip()


def test_wait_for_path_port_and_pattern(executor: Executor, tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.write_text("booting\nlogin: ready\n")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    doc = request([
        step("path", "wait", path=str(log), timeout=5),
        step("port", "wait", port=port, timeout=5),
        step("pattern", "wait", path=str(log), pattern=r"login:\s+\w+", timeout=5),
    ])
    out = executor.run(doc)
    server.close()
    assert [e["status"] for e in out.ends] == ["ok", "ok", "ok"]
    assert out.ends[2]["data"]["match"] == "login: ready"


def test_wait_appears_later(executor: Executor, tmp_path: Path) -> None:
    target = tmp_path / "later"
    running = executor.start()
    running.send(request([step("w", "wait", path=str(target), timeout=30, interval=0.1)]))
    running.read_until("step_start")
    time.sleep(0.3)
    target.write_text("x")
    end = running.read_until("step_end")
    assert running.finish()[0] == 0
    assert end["status"] == "ok" and end["data"]["elapsed"] >= 0.3


def test_wait_timeout_fails_clearly(executor: Executor, tmp_path: Path) -> None:
    doc = request([step("w", "wait", port=1, timeout=0.5, interval=0.1)])
    end = executor.run(doc).one("step_end")
    assert end["status"] == "failed"
    assert end["msg"] == "timed out after 0.5 s waiting for port 127.0.0.1:1"


def test_wait_in_check_mode_does_not_wait(executor: Executor, tmp_path: Path) -> None:
    doc = request([step("w", "wait", path=str(tmp_path / "never"), timeout=30)], check=True)
    end = executor.run(doc).one("step_end")
    assert end["status"] == "skipped" and end["msg"].startswith("would wait for path")


def test_wait_on_a_domain_needs_libvirt(executor: Executor) -> None:
    # This interpreter has no libvirt bindings: the step says which package is missing.
    end = executor.run(request([step("w", "wait", domain="vm1", state="running")])).one("step_end")
    assert end["status"] == "failed" and "install python3-libvirt" in end["msg"]


def test_facts(any_executor: Executor) -> None:
    out = any_executor.run(request([step("facts", "facts")], check=True))
    end = out.one("step_end")
    assert end["status"] == "ok"
    data = end["data"]
    assert set(data) == {"os", "kernel", "hostname", "architecture", "cpu", "memory", "disks",
                         "python", "kvm", "libvirt"}
    assert data["kernel"]["release"] == os.uname().release
    assert data["architecture"] == os.uname().machine
    assert data["cpu"]["count"] == os.cpu_count() and isinstance(data["cpu"]["flags"], list)
    assert data["memory"]["total"] > data["memory"]["available"] > 0
    assert any(d["mount"] == "/" for d in data["disks"])
    assert all(d["fstype"] not in ("proc", "sysfs", "tmpfs") for d in data["disks"])
    assert data["kvm"]["present"] == os.path.exists("/dev/kvm")
    assert data["libvirt"]["available"] in (True, False) and data["libvirt"]["reason"]
    assert data["os"].get("id")


def test_facts_subset(executor: Executor) -> None:
    end = executor.run(request([step("f", "facts", gather=["kernel", "kvm"])])).one("step_end")
    assert set(end["data"]) == {"kernel", "kvm"}
