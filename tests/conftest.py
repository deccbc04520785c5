"""Suite-wide isolation: tests never write to the user's state (job store, labs)."""

from __future__ import annotations

import os
import tempfile

import pytest


def pytest_configure(config: pytest.Config) -> None:
    state = tempfile.mkdtemp(prefix="hostplane-test-state-")
    # Subprocesses (the CLI, serve) inherit these too.
    os.environ["XDG_STATE_HOME"] = state
    os.environ["HOSTPLANE_DB"] = f"sqlite:///{state}/hostplane-test.db"
