"""asyncssh's log calls: formatted as before when enabled, not formatted at all when not."""

from __future__ import annotations

import logging

import asyncssh
import pytest

import control_server.transport.ssh  # noqa: F401  (installs the level check)


class _Loud:
    def __str__(self) -> str:
        raise AssertionError("formatted although nobody logs at this level")


def test_disabled_levels_format_nothing() -> None:
    logging.getLogger("asyncssh").setLevel(logging.WARNING)
    asyncssh.logging.logger.info("connecting %s", [_Loud()])
    asyncssh.logging.logger.get_child("conn", "conn=1").debug1("x %s", [_Loud()])


def test_enabled_levels_read_as_before(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="asyncssh"):
        asyncssh.logging.logger.info("auth for %s on %s", b"root", ("10.0.0.1", 2222))
    assert "auth for root on 10.0.0.1, port 2222" in caplog.text
