"""How the executor starts from its unpacked copy (``host_executor.start``): the code cache
of the hot modules, and the child's PATH and environment without ``os.environ``'s costs."""

from __future__ import annotations

import json
import marshal
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from executor_harness import Executor, parse_events, request, step

from control_server import executor_bundle
from host_executor import proc, start
from host_executor.step import CancelToken

PYTHON = os.environ.get("HOSTPLANE_TEST_EXECUTOR_PYTHON") or sys.executable


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """An unpacked copy, as the first run through the zipapp leaves it."""
    bundle = executor_bundle.build_bundle(tmp_path / "bundle")
    assert Executor(tmp_path / "cache", bundle.path, PYTHON).run(request([])).rc == 0
    return bundle.path.with_suffix(".d")


def _run_copy(copy: Path, doc: dict[str, object], *flags: str) -> subprocess.CompletedProcess[bytes]:
    """The copy's ``__main__.py`` as the launcher runs it."""
    env = dict(os.environ, HOSTPLANE_CACHE_DIR=str(copy.parent / "state"))
    return subprocess.run([PYTHON, "-I", "-S", *flags, str(copy / "__main__.py")],
                          input=json.dumps(doc).encode(), capture_output=True, env=env, timeout=60)


def _hot_file(copy: Path) -> Path:
    found = list(copy.glob("hot.*.bin"))
    assert len(found) == 1, found
    return found[0]


def test_a_command_step_imports_only_the_entry_modules_the_ordinary_way(copy: Path) -> None:
    # -X importtime lists what the import system loads; the code cache bypasses it. So a
    # module missing from HOT_MODULES, or listed before one it imports, shows up here.
    ran = _run_copy(copy, request([step("a", "command", argv=["true"])]), "-X", "importtime")
    assert ran.returncode == 0, ran.stderr
    assert parse_events(ran.stdout)[-1]["status"] == "changed"
    imported = {line.split("|")[2].strip() for line in ran.stderr.decode().splitlines()
                if line.startswith("import time:") and "cumulative" not in line}
    ours = {name for name in imported if name.split(".")[0] == "host_executor"}
    assert ours == {"host_executor", "host_executor.start"}


def _cache_contents(copy: Path) -> tuple[bool, list[list[Any]]]:
    """What the cache file holds, read by the interpreter that wrote it (marshal is
    per version): whether its magic is that interpreter's, then per module its name,
    source path, package flag and the file name its code carries."""
    probe = (
        "import importlib.util, json, marshal, sys\n"
        "magic, entries = marshal.loads(open(sys.argv[1], 'rb').read())\n"
        "print(json.dumps([magic == importlib.util.MAGIC_NUMBER]\n"
        "                 + [[n, p, k, c.co_filename] for n, p, k, c in entries]))\n"
    )
    out = subprocess.run([PYTHON, "-I", "-c", probe, str(_hot_file(copy))], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    same_magic, *entries = json.loads(out.stdout)
    return same_magic, entries


def test_the_code_cache_holds_every_hot_module_with_this_interpreters_magic(copy: Path) -> None:
    same_magic, entries = _cache_contents(copy)
    assert same_magic is True
    assert [entry[0] for entry in entries] == list(start.HOT_MODULES)
    for name, path, is_package, filename in entries:
        assert Path(path).is_file() and filename == path
        assert is_package == path.endswith("__init__.py"), name


@pytest.mark.parametrize("content", [b"", b"not marshal data", marshal.dumps((b"\0\0\r\n", ()))])
def test_a_broken_or_foreign_cache_file_is_replaced(copy: Path, content: bytes) -> None:
    hot = _hot_file(copy)
    hot.write_bytes(content)
    ran = _run_copy(copy, request([step("a", "command", argv=["true"])]))
    assert ran.returncode == 0, ran.stderr
    assert hot.read_bytes() != content
    assert _cache_contents(copy)[0] is True


@pytest.mark.parametrize("entries", ["(('host_executor.main', '/x.py', False, 'not code'),)",
                                     "((1, 2),)", "'not entries'"])
def test_a_cache_file_with_this_magic_but_bad_entries_only_costs_the_cache(
    copy: Path, entries: str,
) -> None:
    write = ("import importlib.util, marshal, sys\n"
             f"open(sys.argv[1], 'wb').write(marshal.dumps((importlib.util.MAGIC_NUMBER, {entries})))\n")
    subprocess.run([PYTHON, "-I", "-c", write, str(_hot_file(copy))], check=True, timeout=60)
    ran = _run_copy(copy, request([step("a", "command", argv=["true"])]))
    assert ran.returncode == 0, ran.stderr
    assert parse_events(ran.stdout)[-1]["status"] == "changed" and ran.stderr == b""


def test_modules_from_the_cache_look_imported_and_the_rest_still_imports(copy: Path) -> None:
    probe = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(copy)!r})\n"
        "from host_executor import start\n"
        f"start.load_hot({str(copy)!r})\n"
        "import host_executor, host_executor.main as main, host_executor.lock as lock\n"
        "print(json.dumps([main.__file__, main.__spec__.origin, main.__package__,\n"
        "    main.__loader__.get_source(main.__name__)[:3], host_executor.main is main,\n"
        "    host_executor.__path__, lock.__spec__.origin]))\n"
    )
    out = subprocess.run([PYTHON, "-I", "-S", "-c", probe], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    main_file = str(copy / "host_executor" / "main.py")
    assert json.loads(out.stdout) == [
        main_file, main_file, "host_executor", '"""', True, [str(copy / "host_executor")],
        str(copy / "host_executor" / "lock.py"),
    ]


def test_a_cache_that_cannot_be_written_still_runs_with_what_it_compiled(copy: Path) -> None:
    hot = _hot_file(copy)
    hot.unlink()
    hot.mkdir()  # neither readable nor replaceable, even for root
    ran = _run_copy(copy, request([step("a", "command", argv=["true"])]))
    assert ran.returncode == 0, ran.stderr
    assert parse_events(ran.stdout)[-1]["status"] == "changed"
    assert not list(copy.glob("*.tmp"))


def test_exit_status_is_mains_through_the_copy(copy: Path) -> None:
    failed = _run_copy(copy, request([step("a", "command", argv=["false"])]))
    assert failed.returncode == 1 and parse_events(failed.stdout)[-1]["status"] == "failed"
    bad = _run_copy(copy, {"protocol": 1, "id": "x", "steps": "no"})
    assert bad.returncode == 2 and parse_events(bad.stdout)[-1]["event"] == "error"


def test_the_childs_path_is_looked_up_as_os_get_exec_path_does(monkeypatch: pytest.MonkeyPatch) -> None:
    assert proc._candidates("./x", None) == ["./x"]
    assert proc._candidates("x", {"PATH": "/a:/b"}) == ["/a/x", "/b/x"]
    assert proc._candidates("x", {}) == [os.path.join(d, "x") for d in os.defpath.split(os.pathsep)]
    assert proc._candidates("x", {"PATH": ""}) == ["x"]
    monkeypatch.setenv("PATH", "/c")
    assert proc._candidates("x", None) == ["/c/x"] == [os.path.join(d, "x") for d in os.get_exec_path()]


def test_a_child_gets_the_executors_current_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOSTPLANE_TEST_ENV_PROBE", "été=1")
    monkeypatch.delenv("HOSTPLANE_TEST_ENV_GONE", raising=False)
    result = proc.run_process(["sh", "-c", 'printf "%s|%s" "$HOSTPLANE_TEST_ENV_PROBE" '
                                           '"${HOSTPLANE_TEST_ENV_GONE-unset}"'],
                              1000, CancelToken(), 30)
    assert result.rc == 0 and bytes(result.stdout).decode() == "été=1|unset"
