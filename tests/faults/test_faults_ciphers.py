"""The cipher hostplane negotiates with a real sshd: AES-GCM unless ssh_config sets
Ciphers (the user's choice wins), and a server without AES-GCM still connects."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sshd_harness import LoopbackSSHD

from control_server.inventory import ConnectionTarget
from control_server.transport.base import TransportSettings
from control_server.transport.limiter import HandshakeLimiter
from control_server.transport.ssh import AsyncSSHTransport


def _cipher(server: LoopbackSSHD, config: Path) -> str:
    async def go() -> str:
        target = ConnectionTarget(server.hosts[0], server.hosts[0], None, None, None,
                                  "ssh", "python3", False, None)
        settings = TransportSettings(host_key_checking="strict", known_hosts=server.known_hosts,
                                     ssh_config=config)
        transport = AsyncSSHTransport(target, settings, HandshakeLimiter())
        await transport.connect()
        try:
            assert transport._conn is not None
            return str(transport._conn.get_extra_info("send_cipher"))
        finally:
            await transport.close()

    return asyncio.run(go())


def test_aes_gcm_by_default(sshd: LoopbackSSHD) -> None:
    assert _cipher(sshd, sshd.ssh_config) == "aes128-gcm@openssh.com"


def test_the_users_ciphers_win(sshd: LoopbackSSHD, tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text(f"Host {sshd.hosts[0]}\n  Ciphers aes256-ctr\n"
                      + sshd.ssh_config.read_text())
    assert _cipher(sshd, config) == "aes256-ctr"


def test_a_server_without_aes_gcm(sshd_factory) -> None:  # type: ignore[no-untyped-def]
    server: LoopbackSSHD = sshd_factory(count=1,
                                        extra_config=["Ciphers chacha20-poly1305@openssh.com"])
    assert _cipher(server, server.ssh_config) == "chacha20-poly1305@openssh.com"
