"""Fixtures of the fault suite: a real sshd on loopback per test (see ``sshd_harness``)."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sshd_harness import LoopbackSSHD, have_sshd

# Each test gets its own 127.<net>.0.0/16 range, so a server left over by a killed test
# run can never answer for this one.
_NETS = itertools.count(100 + os.getpid() % 50)


@pytest.fixture
def sshd_factory(tmp_path: Path) -> Iterator[object]:
    if not have_sshd():
        pytest.skip("needs root and /usr/sbin/sshd (scripts/bootstrap.sh installs openssh-server)")
    servers: list[LoopbackSSHD] = []

    def make(count: int = 2, extra_config: list[str] | None = None, name: str = "sshd") -> LoopbackSSHD:
        server = LoopbackSSHD(tmp_path / f"{name}{len(servers)}", count=count,
                              net=next(_NETS) % 250 + 2, extra_config=extra_config or [])
        servers.append(server)
        return server.start()

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def sshd(sshd_factory) -> LoopbackSSHD:  # type: ignore[no-untyped-def]
    return sshd_factory()  # type: ignore[no-any-return]
