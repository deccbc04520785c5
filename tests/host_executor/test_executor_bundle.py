"""The zipapp and its shell commands (control side), run through a real ``sh``."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from executor_harness import Executor, request, step

from control_server import executor_bundle
from host_executor import protocol


def _sh(command: str, home: Path, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ, HOME=str(home))
    env.pop("HOSTPLANE_CACHE_DIR", None)
    return subprocess.run(["sh", "-c", command], input=stdin, capture_output=True, env=env,
                          timeout=60, stdin=None if stdin is not None else subprocess.DEVNULL)


def test_build_is_deterministic(tmp_path: Path) -> None:
    one = executor_bundle.build_bundle(tmp_path / "a")
    two = executor_bundle.build_bundle(tmp_path / "b")
    assert one.digest == two.digest and one.data == two.data
    assert one.path.name == f"hostplane-executor-{one.digest}.pyz"
    assert len(one.digest) == 16 and int(one.digest, 16) >= 0
    assert executor_bundle.build_executor(tmp_path / "a") == (one.path, one.digest)


def test_digest_follows_the_contents() -> None:
    files = executor_bundle.package_files()
    changed = [(name, data + b"\n# changed") if name.endswith("main.py") else (name, data)
               for name, data in files]
    assert executor_bundle.compute_digest(files) != executor_bundle.compute_digest(changed)
    assert executor_bundle.compute_digest(files) == executor_bundle.compute_digest(files[::-1])


def test_zip_layout(tmp_path: Path) -> None:
    bundle = executor_bundle.build_bundle(tmp_path)
    with zipfile.ZipFile(bundle.path) as archive:
        names = archive.namelist()
        assert names == sorted(names)
        assert archive.read(protocol.EXECUTOR_DIGEST_FILE).decode().strip() == bundle.digest
        assert {i.date_time for i in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    assert "__main__.py" in names and "host_executor/protocol.py" in names
    assert "host_executor/actions/command.py" in names
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)


def test_zipapp_reports_its_digest(tmp_path: Path, zipapp: Path) -> None:
    out = Executor(tmp_path / "cache", zipapp).run(request([]))
    digest = zipapp.name[len("hostplane-executor-"):-len(".pyz")]
    assert out.one("hello")["digest"] == digest


def test_zipapp_unpacks_once_and_caches_bytecode(tmp_path: Path) -> None:
    bundle = executor_bundle.build_bundle(tmp_path / "b")
    unpacked = bundle.path.with_suffix(".d")
    assert not unpacked.exists()
    executor = Executor(tmp_path / "cache", bundle.path)
    assert executor.run(request([])).rc == 0
    assert (unpacked / "host_executor" / "__init__.py").is_file()
    assert (unpacked / "_digest.txt").read_text().strip() == bundle.digest
    assert list(unpacked.glob("hot.*.bin"))  # the code of the hot modules, compiled once
    assert executor.run(request([])).one("hello")["digest"] == bundle.digest


def test_zipapp_runs_from_the_zip_when_it_cannot_unpack(tmp_path: Path) -> None:
    bundle = executor_bundle.build_bundle(tmp_path / "b")
    bundle.path.with_suffix(".d").write_text("in the way")  # (a read-only cache, for root)
    out = Executor(tmp_path / "cache", bundle.path).run(request([step("a", "facts")]))
    assert out.rc == 0 and out.one("hello")["digest"] == bundle.digest
    assert not [p for p in bundle.path.parent.iterdir() if p.name.endswith(".tmp")]


def test_concurrent_first_runs_share_one_unpacked_copy(tmp_path: Path) -> None:
    bundle = executor_bundle.build_bundle(tmp_path / "b")
    executor = Executor(tmp_path / "cache", bundle.path)
    procs = [executor.start() for _ in range(4)]
    for proc in procs:
        proc.send(request([step("a", "command", argv=["true"])]), close=True)
    for proc in procs:
        proc.read_until("done")
        assert proc.finish()[0] == 0
    leftovers = [p.name for p in bundle.path.parent.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_remote_dir_word_quoting() -> None:
    word = executor_bundle.remote_dir_word
    assert word("$HOME/.cache/hostplane") == '"$HOME"/.cache/hostplane'
    assert word("~/my cache") == "\"$HOME\"'/my cache'"
    assert word("$HOME") == '"$HOME"'
    assert word("/var/lib/hostplane") == "/var/lib/hostplane"
    assert word("/tmp/a b;rm -rf /") == shlex.quote("/tmp/a b;rm -rf /")


def test_launcher_missing_then_upload_then_run(tmp_path: Path) -> None:
    bundle = executor_bundle.build_bundle(tmp_path / "build")
    home = tmp_path / "home"
    home.mkdir()
    launch = executor_bundle.launcher_command(
        executor_bundle.DEFAULT_REMOTE_DIR, sys.executable, bundle.digest, []
    )
    # Missing: the marker and EXIT_MISSING, and stdin is never read.
    missing = subprocess.Popen(["sh", "-c", launch], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, env=dict(os.environ, HOME=str(home)))
    out, _ = missing.communicate(timeout=30)
    assert missing.returncode == protocol.EXIT_MISSING
    assert out.decode().strip() == protocol.MISSING_MARKER

    upload = executor_bundle.upload_command(executor_bundle.DEFAULT_REMOTE_DIR, bundle.digest)
    done = _sh(upload, home, bundle.data)
    assert done.returncode == 0, done.stderr
    cache = home / ".cache" / "hostplane"
    assert cache.stat().st_mode & 0o777 == 0o700
    placed = cache / bundle.filename
    assert placed.read_bytes() == bundle.data
    assert placed.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in cache.iterdir()] == [bundle.filename]  # no temp file left

    req = json.dumps(request([step("hi", "command", argv=["echo", "hi"])], rid="req-1")).encode()
    ran = _sh(launch, home, req)
    assert ran.returncode == 0, ran.stderr
    events = [protocol.decode_event(line) for line in ran.stdout.splitlines()]
    assert events[0]["digest"] == bundle.digest
    assert events[-1]["event"] == "done" and events[-1]["status"] == "changed"
    # The executor's state went to the same remote cache folder.
    assert (cache / "journal" / "req-1.jsonl").is_file()


def test_launcher_passes_extra_args_verbatim(tmp_path: Path) -> None:
    bundle = executor_bundle.build_bundle(tmp_path / "build")
    home = tmp_path / "home"
    remote = str(tmp_path / "remote dir; echo pwned")
    assert _sh(executor_bundle.upload_command(remote, bundle.digest), home, bundle.data).returncode == 0
    launch = executor_bundle.launcher_command(remote, sys.executable, bundle.digest,
                                              ["--journal", "id with 'quotes' $HOME"])
    ran = _sh(launch, home)
    assert ran.returncode == 2
    error = protocol.decode_event(ran.stdout.splitlines()[-1])
    assert "id with 'quotes' $HOME" in error["message"]
    assert b"pwned" not in ran.stdout + ran.stderr
    # The executor keeps its state in the launcher's folder, not in ~/.cache.
    ok = _sh(executor_bundle.launcher_command(remote, sys.executable, bundle.digest, []), home,
             json.dumps(request([], rid="in-remote")).encode())
    assert ok.returncode == 0, ok.stderr
    assert (Path(remote) / "journal" / "in-remote.jsonl").is_file()


def test_upload_failure_leaves_no_temp_file(tmp_path: Path) -> None:
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("x")
    command = executor_bundle.upload_command(str(blocker / "sub"), "0123456789abcdef")
    assert _sh(command, tmp_path, b"data").returncode != 0


def test_commands_reject_bad_digests() -> None:
    with pytest.raises(ValueError):
        executor_bundle.launcher_command("$HOME/x", "python3", "abc; rm -rf /", [])
    with pytest.raises(ValueError):
        executor_bundle.upload_command("$HOME/x", "")


def _system_python_has_libvirt() -> bool:
    try:
        return subprocess.run(["/usr/bin/python3", "-c", "import libvirt"],
                              capture_output=True).returncode == 0
    except OSError:
        return False


def test_launcher_runs_the_unpacked_copy_isolated(tmp_path: Path) -> None:
    bundle = executor_bundle.build_bundle(tmp_path / "build")
    home = tmp_path / "home"
    remote = str(tmp_path / "remote")
    assert _sh(executor_bundle.upload_command(remote, bundle.digest), home, bundle.data).returncode == 0
    launch = executor_bundle.launcher_command(remote, sys.executable, bundle.digest, [])
    assert " -I -S " in executor_bundle._LAUNCH_SCRIPT
    # A PYTHONPATH module shadowing a stdlib one must not reach the executor (-I).
    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "fcntl.py").write_text("raise SystemExit('shadowed')\n")
    for n in range(2):  # the first run unpacks the zipapp, the second runs the copy
        req = json.dumps(request([step("hi", "command", argv=["echo", "hi"])], rid=f"iso-{n}"))
        env = dict(os.environ, HOME=str(home), PYTHONPATH=str(evil))
        ran = subprocess.run(["sh", "-c", launch], input=req.encode(), capture_output=True,
                             env=env, timeout=60)
        assert ran.returncode == 0, ran.stderr
        events = [protocol.decode_event(line) for line in ran.stdout.splitlines()]
        assert events[0]["digest"] == bundle.digest and events[-1]["status"] == "changed"
        assert (Path(remote) / f"hostplane-executor-{bundle.digest}.d" / "__main__.py").is_file()
    copy = Path(remote) / f"hostplane-executor-{bundle.digest}.d"
    assert list(copy.glob("hot.*.bin"))  # the hot modules' code, cached
    assert any(p.name.startswith("start.") for p in (copy / "host_executor" / "__pycache__").iterdir())


@pytest.mark.skipif(not _system_python_has_libvirt(), reason="no python3-libvirt for /usr/bin/python3")
def test_launcher_finds_the_system_libvirt_bindings_despite_dash_s(tmp_path: Path) -> None:
    bundle = executor_bundle.build_bundle(tmp_path / "build")
    home = tmp_path / "home"
    remote = str(tmp_path / "remote")
    assert _sh(executor_bundle.upload_command(remote, bundle.digest), home, bundle.data).returncode == 0
    launch = executor_bundle.launcher_command(remote, "/usr/bin/python3", bundle.digest, [])
    steps = [{"name": "net", "action": "libvirt_network",
              "args": {"name": "default", "state": "active", "uri": "test:///default"}}]
    for n in range(2):
        ran = _sh(launch, home, json.dumps(request(steps, rid=f"lv-{n}")).encode())
        assert ran.returncode == 0, (ran.stdout, ran.stderr)
        end = [protocol.decode_event(line) for line in ran.stdout.splitlines()][-2]
        assert end["event"] == "step_end" and end["status"] in ("ok", "changed"), end
    watch = executor_bundle.launcher_command(remote, "/usr/bin/python3", bundle.digest,
                                             ["--watch-domains", "test:///default"])
    proc = subprocess.Popen(["sh", "-c", watch], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=dict(os.environ, HOME=str(home)))
    assert proc.stdout is not None
    first = [json.loads(proc.stdout.readline()) for _ in range(2)]
    proc.terminate()
    proc.communicate(timeout=30)
    assert [e["event"] for e in first] == ["hello", "domain_list"]
