"""The suite's own state and caches live in a temp dir (see ``tests/conftest.py``), never in
the real HOME's ``~/.cache/hostplane`` or job store."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from control_server.executor_bundle import default_cache_dir


@pytest.mark.parametrize("name", ["HOME", "XDG_STATE_HOME", "HOSTPLANE_CACHE_DIR",
                                  "HOSTPLANE_CONTROL_CACHE_DIR"])
def test_env_points_into_a_temp_dir(name: str) -> None:
    temp = Path(tempfile.gettempdir()).resolve()
    assert Path(os.environ[name]).resolve().is_relative_to(temp), os.environ[name]


def test_caches_and_store_resolve_under_the_temp_home() -> None:
    home = Path.home().resolve()
    assert home.is_relative_to(Path(tempfile.gettempdir()).resolve())
    assert default_cache_dir().resolve().is_relative_to(home.parent)
    assert os.environ["HOSTPLANE_DB"].startswith(f"sqlite:///{home.parent}")
