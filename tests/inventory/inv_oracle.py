"""ansible-core as the test oracle: batched, parallel, isolated from ~.

All calls of a test session are collected first, then run in one go by
``inv_oracle_server.py`` (ansible imported once, one fork per call, two at a time), so the
~1 s start-up of ansible is paid once instead of per call.  Results are cached in memory per
distinct call.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

SERVER = Path(__file__).with_name("inv_oracle_server.py")
HAVE_ANSIBLE = importlib.util.find_spec("ansible") is not None


@dataclass(frozen=True)
class Call:
    tool: str  # "ansible-inventory" or "ansible"
    args: tuple[str, ...]
    cwd: str


@dataclass(frozen=True)
class Result:
    rc: int
    stdout: str
    stderr: str

    def json(self) -> dict[str, object]:
        assert self.rc == 0, f"ansible failed (rc={self.rc}):\n{self.stderr}"
        data: dict[str, object] = json.loads(self.stdout)
        meta = data.get("_meta")
        if isinstance(meta, dict):
            meta.pop("profile", None)
        return data

    def list_hosts(self) -> list[str]:
        """Host names of ``ansible PATTERN --list-hosts`` ([] when it refused)."""
        lines = self.stdout.splitlines()
        if self.rc != 0 or not lines:
            return []
        assert lines[0].strip().startswith("hosts ("), self.stdout
        return [line.strip() for line in lines[1:] if line.strip()]

    def warnings(self) -> list[str]:
        found = re.findall(r"\[WARNING\]: (.*)", self.stderr)
        return [w.strip() for w in found]


def ansible_env(home: Path) -> dict[str, str]:
    """An environment where ansible reads no user config and writes only under ``home``."""
    home.mkdir(parents=True, exist_ok=True)
    config = home / "ansible.cfg"
    config.write_text("[defaults]\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(
        HOME=str(home),
        ANSIBLE_CONFIG=str(config),
        ANSIBLE_HOME=str(home / ".ansible"),
        ANSIBLE_LOCAL_TEMP=str(home / "tmp"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED="1",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="1",
        ANSIBLE_LOCALHOST_WARNING="0",
        ANSIBLE_DEPRECATION_WARNINGS="0",
        ANSIBLE_SYSTEM_WARNINGS="0",
        ANSIBLE_RETRY_FILES_ENABLED="0",
        PYTHONWARNINGS="ignore",
    )
    return env


class Oracle:
    def __init__(self, home: Path, parallel: int | None = None) -> None:
        self.home = home
        self.env = ansible_env(home)
        self.parallel = parallel or max(2, min(4, os.cpu_count() or 2))
        self._results: dict[Call, Result] = {}

    def run(self, calls: Iterable[Call]) -> None:
        todo = list(dict.fromkeys(c for c in calls if c not in self._results))
        if not todo:
            return
        jobs = [{"argv": [c.tool, *c.args], "cwd": c.cwd} for c in todo]
        with tempfile.TemporaryDirectory(dir=self.home) as work:
            proc = subprocess.run(
                [sys.executable, str(SERVER), work, str(self.parallel)],
                input=json.dumps(jobs),
                capture_output=True,
                text=True,
                env=self.env,
                cwd=str(self.home),
                timeout=max(600, len(jobs)),
                check=False,
            )
        assert proc.returncode == 0, f"oracle server failed:\n{proc.stderr[-4000:]}"
        for call, raw in zip(todo, json.loads(proc.stdout), strict=True):
            self._results[call] = Result(raw["rc"], raw["stdout"], raw["stderr"])

    def result(self, call: Call) -> Result:
        if call not in self._results:
            self.run([call])
        return self._results[call]


def source_args(sources: Sequence[str]) -> tuple[str, ...]:
    args: list[str] = []
    for source in sources:
        args += ["-i", source]
    return tuple(args)


def list_call(sources: Sequence[str], cwd: Path, limit: str | None = None) -> Call:
    extra = ("--limit", limit) if limit else ()
    return Call("ansible-inventory", (*source_args(sources), "--list", *extra), str(cwd))


def graph_call(sources: Sequence[str], cwd: Path, group: str = "all") -> Call:
    return Call("ansible-inventory", (*source_args(sources), "--graph", group), str(cwd))


def hosts_call(sources: Sequence[str], cwd: Path, pattern: str, limit: str | None = None) -> Call:
    extra = ("--limit", limit) if limit else ()
    return Call("ansible", (*source_args(sources), pattern, "--list-hosts", *extra), str(cwd))
