"""The CLI's start-up stays small: a command's module loads only when it runs (issue 9)."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import click

from control_server.cli import COMMANDS, cli
from control_server.cli.common import ENV_DB
from control_server.store import records

HEAVY = ("sqlalchemy", "rich", "fastapi", "asyncssh", "asyncio", "jinja2", "yaml",
         "control_server.api", "control_server.runner")


def _modules_after(*args: str) -> set[str]:
    code = ("import sys\nfrom control_server.cli import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "import json\nprint(json.dumps(sorted(sys.modules)), file=sys.__stderr__)")
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True,
                          text=True, check=True)
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


def _heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY or m in HEAVY)


def test_the_lazy_registry_lists_every_module_command_in_order() -> None:
    listed: list[str] = []
    for module in ("inventory_cmds", "hosts_cmds", "template_cmds", "run_cmds", "jobs_cmds",
                   "events_cmds", "serve_cmds", "image_cmds", "console_cmds", "lab_cmds"):
        mod = importlib.import_module(f"control_server.cli.{module}")
        listed += [c.name for c in mod.COMMANDS if c.name]
    assert list(COMMANDS) == listed
    assert all(isinstance(cmd, click.Command) for cmd in cli.commands.values())


def test_env_db_is_the_stores() -> None:
    assert ENV_DB == records.ENV_DB


def test_version_loads_no_command_module() -> None:
    modules = _modules_after("--version")
    assert not [m for m in modules if m.startswith("control_server.cli.") and
                m != "control_server.cli.common"]
    assert _heavy(modules) == []


def test_exec_on_an_empty_match_loads_nothing_heavy(tmp_path: Path) -> None:
    inv = tmp_path / "hosts.ini"
    inv.write_text("h1 ansible_host=127.0.0.1\n")
    assert _heavy(_modules_after("exec", "-i", str(inv), "nomatch", "--", "true")) == []
