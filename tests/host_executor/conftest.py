"""Fixtures of the executor tests; the helpers live in ``executor_harness``."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from executor_harness import Executor, processes_with_env

from control_server import executor_bundle


@pytest.fixture(scope="session")
def zipapp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return executor_bundle.build_bundle(tmp_path_factory.mktemp("bundle")).path


@pytest.fixture(params=["module", "zipapp"])
def any_executor(request: pytest.FixtureRequest, tmp_path: Path, zipapp: Path) -> Executor:
    """Both ways to run the executor (for the tests that must hold for both)."""
    cache = tmp_path / "cache"
    return Executor(cache, zipapp if request.param == "zipapp" else None)


@pytest.fixture
def executor(tmp_path: Path) -> Executor:
    return Executor(tmp_path / "cache")


@pytest.fixture
def marker(request: pytest.FixtureRequest) -> Iterator[str]:
    """A unique environment marker; any process still carrying it afterwards is killed."""
    value = f"HOSTPLANE_TEST_MARK={os.getpid()}-{time.monotonic_ns()}"
    yield value
    for pid in processes_with_env(value):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
