"""host_executor runs on hosts that have nothing but python3 (>= 3.8): standard library
only, never control_server, libvirt only inside functions of libvirt modules."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "host_executor"
MODULES = sorted(PACKAGE.rglob("*.py"))
# Modules allowed to import libvirt (inside functions): the libvirt actions, and facts,
# which only probes whether the bindings import.
LIBVIRT_MODULES = {"facts.py"}


def _imports(tree: ast.AST) -> list[tuple[str, bool]]:
    """(top-level module name, imported inside a function) for every import."""
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.Import):
                found.extend((alias.name.split(".")[0], inside) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                found.append((child.module.split(".")[0], inside))
            visit(child, inside)

    visit(tree, False)
    return found


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_are_stdlib_only(path: Path) -> None:
    tree = ast.parse(path.read_text(), str(path))
    for name, in_function in _imports(tree):
        if name == "libvirt":
            assert in_function, f"{path.name}: libvirt must be imported lazily, in a function"
            assert path.name.startswith("libvirt") or path.name in LIBVIRT_MODULES, path
            continue
        assert name != "control_server", f"{path.name} imports control_server"
        assert name in sys.stdlib_module_names or name in ("host_executor", "__future__"), (
            f"{path.name} imports {name}, which is not in the standard library"
        )


def test_every_module_has_future_annotations_or_no_annotations() -> None:
    # Annotations like list[str] are evaluated at import on 3.8 unless postponed.
    for path in MODULES:
        text = path.read_text()
        if "->" in text or ": " in text:
            tree = ast.parse(text)
            has_future = any(isinstance(n, ast.ImportFrom) and n.module == "__future__"
                             for n in tree.body)
            uses_annotations = any(isinstance(n, (ast.FunctionDef, ast.AnnAssign)) and
                                   (getattr(n, "returns", None) or getattr(n, "annotation", None))
                                   for n in ast.walk(tree))
            assert has_future or not uses_annotations, path


def _python38() -> str | None:
    """A working Python 3.8 (pyenv's shims may exist without one)."""
    pyenv = Path("/root/.pyenv/versions")
    candidates = sorted(str(p) for p in pyenv.glob("3.8.*/bin/python3")) if pyenv.is_dir() else []
    candidates += [c for c in (shutil.which("python3.8"),) if c]
    for candidate in candidates:
        probe = subprocess.run([candidate, "-c", "import sys; assert sys.version_info[:2] == (3, 8)"],
                               capture_output=True)
        if probe.returncode == 0:
            return candidate
    return None


PY38 = _python38()


@pytest.mark.skipif(PY38 is None, reason="no Python 3.8 on this machine")
def test_compiles_and_runs_on_python38(tmp_path: Path, zipapp: Path) -> None:
    assert PY38 is not None
    compiled = subprocess.run([PY38, "-m", "compileall", "-q", "-d", "x", str(PACKAGE)],
                              capture_output=True, text=True, env={"PYTHONPYCACHEPREFIX": str(tmp_path / "pyc")})
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    # Importing every module evaluates what compiling cannot (runtime typing, 3.9+ APIs).
    names = ["host_executor." + ".".join(p.relative_to(PACKAGE).with_suffix("").parts)
             for p in MODULES if p.name not in ("__main__.py", "__init__.py")]
    imported = subprocess.run([PY38, "-c", "import importlib, sys\nfor n in sys.argv[1:]: importlib.import_module(n)", *names],
                              capture_output=True, text=True, cwd=str(PACKAGE.parent))
    assert imported.returncode == 0, imported.stderr
    from executor_harness import Executor, request, step

    executor = Executor(tmp_path / "cache", zipapp, python=PY38)
    out = executor.run(request([
        step("facts", "facts"),
        step("file", "file", path=str(tmp_path / "f"), content="x"),
        step("cmd", "shell", cmd="echo hi"),
        step("wait", "wait", path=str(tmp_path / "f"), pattern="x", timeout=5),
    ], diff=True))
    assert out.rc == 0, out
    assert out.one("hello")["python"].startswith("3.8.")
    bad = executor.run(b"{not json")
    assert bad.rc == 2 and "Traceback" not in bad.stderr


_LIST_MODULES = (
    "import runpy, sys\n"
    "try:\n"
    "    runpy.run_module('host_executor', run_name='__main__', alter_sys=True)\n"
    "except SystemExit:\n"
    "    pass\n"
    "sys.stderr.write('\\n'.join(sorted(sys.modules)))\n"
)


def _imported_modules(stdin: bytes, tmp_path: Path) -> set[str]:
    """Every module loaded by one run (``-S`` keeps site's own imports out)."""
    proc = subprocess.run([sys.executable, "-S", "-c", _LIST_MODULES], input=stdin,
                          capture_output=True, cwd=str(PACKAGE.parent),
                          env={"HOSTPLANE_CACHE_DIR": str(tmp_path)})
    assert b'"event":"done"' in proc.stdout, proc.stdout + proc.stderr
    return set(proc.stderr.decode().split())


def test_start_up_imports_stay_small(tmp_path: Path) -> None:
    # Start-up time is paid on every host for every sequence: keep heavy modules out.
    names = _imported_modules(b'{"protocol": 1, "id": "x", "steps": []}', tmp_path)
    assert "host_executor.main" in names
    heavy = {"typing", "subprocess", "dataclasses", "argparse", "zipfile", "tempfile",
             "shutil", "difflib", "platform", "socket", "inspect", "logging", "traceback"}
    assert not names & heavy, names & heavy
    assert not any(n.startswith("host_executor.actions.") for n in names)


def test_actions_import_only_what_they_use(tmp_path: Path) -> None:
    req = b'{"protocol": 1, "id": "x", "steps": [{"name": "f", "action": "facts", "args": {"gather": ["kvm"]}}]}'
    names = _imported_modules(req, tmp_path)
    assert "host_executor.actions.facts" in names
    assert "host_executor.actions.command" not in names and "subprocess" not in names
