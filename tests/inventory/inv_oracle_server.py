"""Run many ansible CLI invocations fast: import ansible once, fork per invocation.

Each child is a fresh fork that runs the real CLI entry point (``ansible-inventory`` or
``ansible``) with its own argv, cwd, stdout and stderr, exactly what the console scripts
do; only the ~1 s import of ansible is shared.  Jobs arrive as one JSON list on stdin;
results leave as one JSON list on stdout.  Run with the venv's python; the environment
(ANSIBLE_HOME, ANSIBLE_CONFIG, ...) must be set by the caller, since ansible reads its
configuration when imported.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def _preload() -> None:
    """Load what every run needs: plugin loaders and the builtin collection's metadata.

    Only state that is the same for every run is built here (no CLI arguments, no
    inventory); the CLI itself runs from scratch in each fork.
    """
    import ansible.cli.adhoc
    import ansible.cli.inventory
    from ansible.plugins.loader import init_plugin_loader, inventory_loader
    from ansible.utils.collection_loader._collection_finder import _get_collection_metadata

    init_plugin_loader()
    _get_collection_metadata("ansible.builtin")
    for name in ("host_list", "script", "auto", "yaml", "ini", "toml"):
        inventory_loader.get(name)
    assert ansible.cli.adhoc and ansible.cli.inventory


def _child(job: dict[str, Any], out_path: str, err_path: str) -> None:
    code = 250
    try:
        os.chdir(job["cwd"])
        out = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        err = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(out, 1)
        os.dup2(err, 2)
        argv = job["argv"]
        sys.argv = list(argv)
        if argv[0] == "ansible-inventory":
            from ansible.cli.inventory import main
        else:
            from ansible.cli.adhoc import main
        try:
            main(list(argv))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def main() -> None:
    jobs: list[dict[str, Any]] = json.load(sys.stdin)
    workdir = sys.argv[1]
    parallel = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    _preload()
    results: list[dict[str, Any] | None] = [None] * len(jobs)
    running: dict[int, int] = {}
    pending = list(range(len(jobs)))

    def reap() -> None:
        pid, status = os.wait()
        index = running.pop(pid)
        out = os.path.join(workdir, f"{index}.out")
        err = os.path.join(workdir, f"{index}.err")
        with open(out, encoding="utf-8", errors="replace") as f_out:
            stdout = f_out.read()
        with open(err, encoding="utf-8", errors="replace") as f_err:
            stderr = f_err.read()
        results[index] = {
            "rc": os.waitstatus_to_exitcode(status),
            "stdout": stdout,
            "stderr": stderr,
        }

    while pending or running:
        while pending and len(running) < parallel:
            index = pending.pop(0)
            out = os.path.join(workdir, f"{index}.out")
            err = os.path.join(workdir, f"{index}.err")
            sys.stdout.flush()
            pid = os.fork()
            if pid == 0:
                _child(jobs[index], out, err)
            running[pid] = index
        reap()
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
