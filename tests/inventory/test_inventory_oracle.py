"""The forking oracle gives exactly what the real ansible commands print."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from inv_oracle import HAVE_ANSIBLE, Oracle, graph_call, hosts_call, list_call

pytestmark = pytest.mark.skipif(not HAVE_ANSIBLE, reason="ansible-core (the oracle) is missing")


def test_forked_runs_equal_real_commands(tmp_path: Path) -> None:
    (tmp_path / "inv").mkdir()
    (tmp_path / "inv" / "hosts.ini").write_text("[web]\nw[1:3]\n[db]\nd1 x=1\n[all:vars]\na=1\n")
    (tmp_path / "inv" / "group_vars").mkdir()
    (tmp_path / "inv" / "group_vars" / "web.yml").write_text("gv: web\n")
    sources = [str(tmp_path / "inv")]
    oracle = Oracle(tmp_path / "home")
    calls = [
        list_call(sources, tmp_path),
        graph_call(sources, tmp_path),
        hosts_call(sources, tmp_path, "web:!w2:nomatch", limit="all:!d1"),
    ]
    oracle.run(calls)
    bin_dir = Path(sys.executable).parent
    for call in calls:
        real = subprocess.run(
            [str(bin_dir / call.tool), *call.args],
            cwd=call.cwd,
            env=oracle.env,
            capture_output=True,
            text=True,
            check=False,
        )
        forked = oracle.result(call)
        assert (forked.rc, forked.stdout) == (real.returncode, real.stdout), call
        assert forked.warnings() == [w.strip() for w in real.stderr.split("[WARNING]: ")[1:]]
