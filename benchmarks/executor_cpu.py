"""The executor's CPU cost on a host: one sequence, as the launcher starts it.

    .venv/bin/python benchmarks/executor_cpu.py [--before REV] [--runs 20]
        [--python /usr/bin/python3 ...] [--importtime]

For each executor tree (``--before REV``, taken from git, and the working tree) it builds
the zipapp with that tree's ``control_server/executor_bundle.py``, runs the launcher's
shell line (``sh -c "exec sh -c ... python3 <args> hostplane-executor-<digest>.pyz"``, the
channel command hostplane sends) with a fresh 1-step and 11-step ``command`` request
(argv ``["true"]``) on stdin, and takes the user+sys CPU of the whole process tree from
``os.wait4`` (the shell, the interpreter, the executor and its ``true`` children), median
of ``--runs``. The first run of each bundle unpacks it (not counted). For comparison:
``sh -c true`` and the interpreter alone (``python3 -I -S -c pass``, ``python3 -c pass``).

``--importtime`` adds, per tree, the modules a 1-step run imports (``-X importtime``,
cumulative microseconds, the top entries), through the same launcher.

``--phases`` adds where the CPU of a 1-step run goes in the working tree's executor: it
runs the unpacked copy's start (``host_executor.start``) under a driver that takes
``time.process_time`` around each phase (median of ``--runs``, no shell).

Run it on a quiet machine: the figures are CPU time, not wall time, but a busy machine
still inflates them (caches, frequency).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_BEFORE = "6a6d2fa"  # the executor before issue 9's host-side work

# Run in a child interpreter with the tree's root first on sys.path: builds that tree's
# bundle into argv[2] and prints the launcher line for it (remote dir argv[2]).
_BUILD = r"""
import importlib.util, json, sys
root, folder, python = sys.argv[1], sys.argv[2], sys.argv[3]
sys.path.insert(0, root)
spec = importlib.util.spec_from_file_location(
    "executor_bundle", root + "/control_server/executor_bundle.py")
mod = importlib.util.module_from_spec(spec)
sys.modules["executor_bundle"] = mod
spec.loader.exec_module(mod)
from pathlib import Path
bundle = mod.build_bundle(Path(folder))
print(json.dumps({"digest": bundle.digest, "path": str(bundle.path),
                  "launch": mod.launcher_command(folder, python, bundle.digest, [])}))
"""


# Run as the script of ``python3 -I -S`` with the unpacked copy in EXEC_DIR: what
# ``host_executor.start.run`` does, with the process CPU taken around each phase.
_PHASES = r"""
import os, sys, time
pt = time.process_time
acc = {"interpreter start (to the script's first line)": pt()}
copy = os.environ["EXEC_DIR"]

def timed(owner, name, label):
    inner = getattr(owner, name)
    acc[label] = 0.0  # the table's order
    def wrapper(*args, **kwargs):
        began = pt()
        try:
            return inner(*args, **kwargs)
        finally:
            acc[label] = acc.get(label, 0.0) + pt() - began
    setattr(owner, name, wrapper)

began = pt()
sys.path.insert(0, copy)
from host_executor import start
acc["import os, host_executor, host_executor.start"] = pt() - began
began = pt()
start.load_hot(copy)
acc["hot modules from the code cache (+ _json, fcntl, select, __future__)"] = pt() - began
from host_executor import emitter, journal, main, proc, request, watch
from host_executor.actions import command
timed(request, "read_document", "read the request")
timed(emitter.Emitter, "open_journal", "journal: mkdir check, open, flock, reuse check")
timed(watch.ControllerWatch, "install_signals", "signal handlers")
timed(request, "validate", "validate it")
timed(watch.ControllerWatch, "start", "watcher thread start")
timed(proc, "run_process", "spawn, supervise and reap `true`")
command.run_process = proc.run_process
timed(emitter.Emitter, "emit", "emit 4 events (encode, journal write, stdout write)")
timed(journal.Journal, "append", "- of which the journal writes and the fdatasync")
timed(emitter.Emitter, "close", "close the journal")
timed(journal, "prune_if_due", "prune check")
began = pt()
code = main.main([])
acc["main() in all"] = pt() - began
acc["_end"] = pt()
with open(os.environ["PHASES_OUT"], "a") as out:
    out.write(repr(acc) + "\n")
start._exit(code)
"""


def phases(copy: Path, python: str, runs: int) -> list[tuple[str, float]]:
    """(phase, median CPU ms) of a 1-step run of the unpacked ``copy``."""
    import ast

    folder = Path(tempfile.mkdtemp())
    try:
        driver, out = folder / "phases.py", folder / "phases.txt"
        driver.write_text(_PHASES)
        env = dict(os.environ, EXEC_DIR=str(copy), PHASES_OUT=str(out),
                   HOSTPLANE_CACHE_DIR=str(folder))
        totals = [cpu_ms([python, "-I", "-S", str(driver)], request(1), env)[0] for _ in range(runs)]
        rows = [ast.literal_eval(line) for line in out.read_text().splitlines()]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    table = [(key, statistics.median(row.get(key, 0.0) for row in rows) * 1000)
             for key in rows[0] if key != "_end"]
    table.append(("exit and the `true` child (process tree total - CPU at the end)",
                  statistics.median(t - row["_end"] * 1000 for t, row in zip(totals, rows, strict=True))))
    table.append(("process tree total (no shell)", statistics.median(totals)))
    return table


def request(steps: int) -> bytes:
    doc = {
        "protocol": 1, "id": "bench-" + uuid.uuid4().hex, "check": False, "diff": False,
        "lock": None, "deadline": None, "on_failure": "stop", "output_limit": 1048576,
        "steps": [{"name": f"step {i}", "action": "command", "args": {"argv": ["true"]},
                   "timeout": 30} for i in range(steps)],
    }
    return json.dumps(doc).encode()


def cpu_ms(argv: list[str], stdin: bytes = b"", env: dict[str, str] | None = None,
           stderr_to: int | None = None) -> tuple[float, bytes]:
    """user+sys CPU (ms) of ``argv`` and everything it waited for; and its stdout."""
    read_in, write_in = os.pipe()
    read_out, write_out = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.dup2(read_in, 0)
            os.dup2(write_out, 1)
            if stderr_to is not None:
                os.dup2(stderr_to, 2)
            for fd in (read_in, write_in, read_out, write_out):
                os.close(fd)
            os.execve(argv[0], argv, env if env is not None else dict(os.environ))
        finally:
            os._exit(127)
    os.close(read_in)
    os.close(write_out)
    os.write(write_in, stdin)
    os.close(write_in)  # the executor reads until its document ends: EOF is fine here
    chunks = []
    while True:
        chunk = os.read(read_out, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(read_out)
    _, status, usage = os.wait4(pid, 0)
    if os.waitstatus_to_exitcode(status) not in (0,):
        raise SystemExit(f"{argv[:3]} failed ({status}): {b''.join(chunks)[-500:]!r}")
    return (usage.ru_utime + usage.ru_stime) * 1000.0, b"".join(chunks)


def sample(argv: list[str], steps: int | None = None, env: dict[str, str] | None = None) -> float:
    ms, out = cpu_ms(argv, request(steps) if steps is not None else b"", env)
    if steps is not None and b'"event":"done"' not in out:
        raise SystemExit(f"no done event: {out[-500:]!r}")
    return ms


def tree_root(rev: str | None, scratch: Path) -> Path:
    if rev is None:
        return REPO
    root = scratch / ("tree-" + rev)
    root.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", rev, "host_executor", "control_server/executor_bundle.py"],
        check=True, stdout=subprocess.PIPE).stdout
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
    return root


def build(root: Path, folder: Path, python: str) -> dict[str, str]:
    folder.mkdir(parents=True)
    out = subprocess.run([sys.executable, "-I", "-c", _BUILD, str(root), str(folder), python],
                         check=True, stdout=subprocess.PIPE, cwd=str(folder)).stdout
    info: dict[str, str] = json.loads(out)
    return info


def importtime(launch: str, env: dict[str, str], top: int) -> list[tuple[int, str]]:
    """(cumulative us, module) of the modules a 1-step run imports, largest first. The
    launcher's python word is replaced by a wrapper that adds ``-X importtime`` (which
    works under ``-I``, unlike ``PYTHONPROFILEIMPORTTIME``)."""
    folder = Path(tempfile.mkdtemp())
    try:
        wrapper = folder / "python-importtime"
        wrapper.write_text(f'#!/bin/sh\nexec {env["BENCH_PYTHON"]} -X importtime "$@"\n')
        wrapper.chmod(0o755)
        line = launch.replace(f" {env['BENCH_PYTHON']} ", f" {wrapper} ", 1)
        with tempfile.TemporaryFile() as err:
            cpu_ms(["/bin/sh", "-c", line], request(1), env, err.fileno())
            err.seek(0)
            text = err.read().decode(errors="replace")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    rows = []
    for line in text.splitlines():
        if line.startswith("import time:") and "cumulative" not in line:
            fields = line[len("import time:"):].split("|")
            rows.append((int(fields[1]), fields[2].rstrip()))
    return sorted(rows, reverse=True)[:top]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", default=DEFAULT_BEFORE,
                        help="git revision of the 'before' executor (default %(default)s; '' for none)")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--python", action="append",
                        help="interpreter(s) to run the executor with (default /usr/bin/python3)")
    parser.add_argument("--importtime", action="store_true")
    parser.add_argument("--phases", action="store_true")
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    pythons = args.python or ["/usr/bin/python3"]
    scratch = Path(tempfile.mkdtemp(prefix="hostplane-executor-cpu-"))
    try:
        trees = [("after (working tree)", None)]
        if args.before:
            trees.insert(0, (f"before ({args.before})", args.before))
        roots = {label: tree_root(rev, scratch) for label, rev in trees}
        print(f"CPU = user+sys of the whole process tree, ms; median of {args.runs} interleaved runs")
        for number, python in enumerate(pythons):
            env = dict(os.environ, BENCH_PYTHON=python)
            version = subprocess.run([python, "-c", "import sys; print(sys.version.split()[0])"],
                                     stdout=subprocess.PIPE, text=True, check=True).stdout.strip()
            print(f"\n## {python} ({version})\n")
            launches = {}
            copies = {}
            for index, (label, _rev) in enumerate(trees):
                info = build(roots[label], scratch / f"cache-{number}-{index}", python)
                copies[label] = Path(info["path"]).with_suffix(".d")
                launches[label] = ["/bin/sh", "-c", info["launch"]]
                sample(launches[label], 1, env)  # the first run unpacks the bundle
            floors = {
                "sh -c true": ["/bin/sh", "-c", "true"],
                "python3 -I -S -c pass": [python, "-I", "-S", "-c", "pass"],
                "python3 -c pass": [python, "-c", "pass"],
            }
            samples: dict[str, list[float]] = {}
            for _ in range(args.runs):  # interleaved: a busy spell hits every variant alike
                for name, argv in floors.items():
                    samples.setdefault(name, []).append(sample(argv))
                for label, argv in launches.items():
                    samples.setdefault(label + "/1", []).append(sample(argv, 1, env))
                    samples.setdefault(label + "/11", []).append(sample(argv, 11, env))
            med = {key: statistics.median(values) for key, values in samples.items()}
            print("| reference | CPU ms |\n| --- | ---: |")
            for name in floors:
                print(f"| `{name}` | {med[name]:.1f} |")
            print("\n| executor | 1 step | 11 steps | per extra step |\n| --- | ---: | ---: | ---: |")
            for label in launches:
                one, eleven = med[label + "/1"], med[label + "/11"]
                print(f"| {label} | {one:.1f} | {eleven:.1f} | {(eleven - one) / 10:.2f} |")
            if args.importtime:
                for label, argv in launches.items():
                    print(f"\nimports of a 1-step run, {label} (-X importtime, cumulative us):")
                    for us, name in importtime(argv[2], env, args.top):
                        print(f"  {us:7d}  {name}")
            if args.phases:
                print(f"\nphases of a 1-step run, working tree (process CPU, median of {args.runs}):")
                print("| phase | CPU ms |\n| --- | ---: |")
                for name, ms in phases(copies[trees[-1][0]], python, args.runs):
                    print(f"| {name} | {ms:.2f} |")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
