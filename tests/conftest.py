"""Suite-wide isolation: tests never write to the user's state (job store, labs) nor to the
real ``~/.cache/hostplane`` (executor cache and journals of local runs, the control cache)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_ROOT = Path(tempfile.mkdtemp(prefix="hostplane-test-state-"))


def pytest_configure(config: pytest.Config) -> None:
    state = _ROOT
    home = state / "home"
    home.mkdir(exist_ok=True)
    # Subprocesses (the CLI, serve, a local executor) inherit these too. HOME matters: the
    # launcher caches the executor in "$HOME/.cache/hostplane" on a local host.
    os.environ["HOME"] = str(home)
    os.environ["XDG_STATE_HOME"] = str(state)
    os.environ["HOSTPLANE_DB"] = f"sqlite:///{state}/hostplane-test.db"
    os.environ["HOSTPLANE_CACHE_DIR"] = str(home / ".cache" / "hostplane")
    os.environ["HOSTPLANE_CONTROL_CACHE_DIR"] = str(state / "control-cache")

