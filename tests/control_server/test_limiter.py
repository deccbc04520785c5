"""The handshake limiter: per-sshd AIMD windows, bounded jittered retry (pure asyncio, no
real sleeping), and the sshd endpoint/identity read from ssh_config and known_hosts."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from pathlib import Path

import pytest

from control_server.transport.endpoint import ssh_endpoint, sshd_identity
from control_server.transport.limiter import HandshakeLimiter, Retryable


class FakeSSHD:
    """Drops a handshake while ``capacity`` others are in key exchange (MaxStartups a:100:a)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.in_flight = 0
        self.peak = 0
        self.drops = 0
        self.accepted = 0

    async def handshake(self) -> str:
        if self.in_flight >= self.capacity:
            self.drops += 1
            await asyncio.sleep(0)
            raise Retryable("Connection lost")
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            for _ in range(3):  # a handshake spans a few loop turns
                await asyncio.sleep(0)
        finally:
            self.in_flight -= 1
        self.accepted += 1
        return "conn"


async def _no_sleep(delay: float) -> None:
    await asyncio.sleep(0)


def test_one_sshd_many_hosts_all_connect_and_window_adapts() -> None:
    sshd = FakeSSHD(capacity=3)
    limiter = HandshakeLimiter(limit=16, retries=5, sleep=_no_sleep)

    async def main() -> list[str]:
        return await asyncio.gather(*(limiter.run(sshd.handshake, "10.0.0.1:22")
                                      for _ in range(40)))

    assert asyncio.run(main()) == ["conn"] * 40
    win = limiter.window("10.0.0.1:22")
    assert sshd.drops > 0  # the burst was dropped at first...
    assert win.drops == sshd.drops
    assert limiter.retried == sshd.drops
    assert win.active == 0 and not win.waiters


def test_addresses_of_one_sshd_share_a_window() -> None:
    sshd = FakeSSHD(capacity=2)
    limiter = HandshakeLimiter(limit=16, retries=6, sleep=_no_sleep)
    endpoints = [f"127.0.0.{i % 16 + 1}:2222" for i in range(40)]
    for ep in endpoints:
        limiter.same_server(ep, "HOSTKEY")

    async def main() -> list[str]:
        return await asyncio.gather(*(limiter.run(sshd.handshake, ep) for ep in endpoints))

    assert asyncio.run(main()) == ["conn"] * 40
    assert len({id(limiter.window(ep)) for ep in endpoints}) == 1


def test_learning_the_server_later_merges_windows() -> None:
    limiter = HandshakeLimiter(limit=8)
    a, b = limiter.window("a:22"), limiter.window("b:22")
    assert a is not b
    limiter.same_server("a:22", "K")
    limiter.same_server("b:22", "K")
    assert limiter.window("a:22") is limiter.window("b:22") is a
    limiter.same_server("b:22", "OTHER")  # the first identity wins
    assert limiter.window("b:22") is a


def test_halve_once_per_round_and_grow_by_one_up_to_the_limit() -> None:
    limiter = HandshakeLimiter(limit=8, sleep=_no_sleep)
    win = limiter.window("e:22")

    async def burst() -> None:
        held = [await limiter._acquire("e:22") for _ in range(4)]
        for w, epoch in held:  # four drops of one round of attempts
            limiter._release(w, epoch, dropped=True)
        assert win.size == 4  # halved once, as TCP
        w, epoch = await limiter._acquire("e:22")
        limiter._release(w, epoch, dropped=True)
        assert win.size == 2  # a drop of the next round halves again

    asyncio.run(burst())

    async def ok() -> str:
        return "x"

    for _ in range(10):
        asyncio.run(limiter.run(ok, "e:22"))
    assert win.size == 8  # +1 per success, capped at the global limit


def test_retry_is_bounded_with_capped_jittered_backoff() -> None:
    delays: list[float] = []

    async def record(delay: float) -> None:
        delays.append(delay)

    calls = 0

    async def always_dropped() -> None:
        nonlocal calls
        calls += 1
        raise Retryable("Connection lost")

    limiter = HandshakeLimiter(limit=4, retries=5, base_delay=0.1, max_delay=0.5, sleep=record)
    with pytest.raises(Retryable):
        asyncio.run(limiter.run(always_dropped, "dead:22"))
    # window 4 -> 2 -> 1 (probing, free), then 6 drops of a lone handshake: give up
    assert calls == 8 and len(delays) == 7
    assert all(0 <= d <= min(0.5, 0.1 * 2**i) for i, d in enumerate(delays))
    assert limiter.window("dead:22").size == 1


def test_other_errors_are_never_retried_and_leave_the_window() -> None:
    class AuthFailed(Exception):
        pass

    calls = 0

    async def auth_fails() -> None:
        nonlocal calls
        calls += 1
        raise AuthFailed("permission denied")

    limiter = HandshakeLimiter(limit=4, sleep=_no_sleep)
    with pytest.raises(AuthFailed):
        asyncio.run(limiter.run(auth_fails, "h:22"))
    assert calls == 1 and limiter.retried == 0
    win = limiter.window("h:22")
    assert (win.size, win.active) == (4, 0)


def test_a_cancelled_waiter_does_not_stall_the_queue() -> None:
    limiter = HandshakeLimiter(limit=1, sleep=_no_sleep)

    async def main() -> None:
        release = asyncio.Event()

        async def slow() -> str:
            await release.wait()
            return "slow"

        async def fast() -> str:
            return "fast"

        first = asyncio.ensure_future(limiter.run(slow, "e:22"))
        await asyncio.sleep(0)
        waiter = asyncio.ensure_future(limiter.run(fast, "e:22"))
        await asyncio.sleep(0)
        waiter.cancel()
        release.set()
        assert await first == "slow"
        assert await asyncio.wait_for(limiter.run(fast, "e:22"), 1) == "fast"

    asyncio.run(main())


# --- which sshd a host name leads to ---------------------------------------------------


def test_endpoint_follows_ssh_config_aliases(tmp_path: Path) -> None:
    cfg = tmp_path / "config"
    cfg.write_text("Host node01\n  HostName 127.9.0.1\n  Port 2200\n"
                   "Host node* !node03\n  Port 2201\n"
                   "Host *\n  Port 2299\n  HostName %h.example\n")
    assert ssh_endpoint("node01", None, [cfg]) == "127.9.0.1:2200"
    assert ssh_endpoint("node01", 22, [cfg]) == "127.9.0.1:22"  # ansible_port wins
    assert ssh_endpoint("node02", None, [cfg]) == "node02.example:2201"
    assert ssh_endpoint("node03", None, [cfg]) == "node03.example:2299"
    assert ssh_endpoint("other", None, [tmp_path / "missing"]) == "other:22"


def test_identity_is_the_recorded_host_key(tmp_path: Path) -> None:
    salt = b"0123456789abcdefghij"
    digest = hmac.new(salt, b"[10.1.1.1]:2222", hashlib.sha1).digest()
    hashed = f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"
    known = tmp_path / "known_hosts"
    known.write_text("@revoked * ssh-ed25519 REVOKED\n"
                     "[127.9.0.1]:2200,[127.9.0.2]:2200 ssh-ed25519 KEYA\n"
                     f"{hashed} ssh-ed25519 KEYB\n")
    cfg = tmp_path / "config"
    cfg.write_text(f"Host a b\n  Port 2200\n  UserKnownHostsFile {known}\n"
                   "Host a\n  HostName 127.9.0.1\nHost b\n  HostName 127.9.0.2\n")
    assert sshd_identity("a", None, [cfg]) == ("127.9.0.1:2200", "KEYA")
    assert sshd_identity("b", None, [cfg]) == ("127.9.0.2:2200", "KEYA")
    assert sshd_identity("10.1.1.1", 2222, [cfg], known) == ("10.1.1.1:2222", "KEYB")
    assert sshd_identity("10.1.1.1", 22, [cfg], known) == ("10.1.1.1:22", None)
