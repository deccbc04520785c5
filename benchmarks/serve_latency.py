"""serve with warm connections: the latency of a one-step request to a warm host over the
HTTP API, against one raw channel on an open asyncssh connection, and the sustained
throughput of one-step requests over N warm hosts.

    sudo .venv/bin/python benchmarks/serve_latency.py            # 30 hosts, 20 s
    sudo .venv/bin/python benchmarks/serve_latency.py --hosts 30 --seconds 20 --clients 30

No Docker: real OpenSSH servers on loopback (``tests/faults/sshd_harness.LoopbackSSHD``;
one sshd answers on at most 16 addresses, so 30 hosts take 2), a real ``hostplane serve``
(subprocess, SQLite job store, bearer token as ``tests/service`` does, ``--no-facts
--no-watch --log-level warning``), a one-step template (``command: true``).

Measured:
- ``raw true``: ``conn.run("true")`` on an open asyncssh connection (the channel floor);
- ``raw executor``: the same one-step request as serve sends, written to the executor's
  launcher on one raw channel (the channel plus the host-side executor, no control side);
- ``api ?wait``: ``POST /v1/requests?wait=60`` to a warm host, one at a time (the job is
  created, recorded, run over the pooled connection and answered);
- throughput: ``--clients`` concurrent API clients, each posting ``?wait`` requests to the
  hosts round-robin for ``--seconds``; requests/s, p50/p99, errors, new SSH handshakes
  during the run (sshd's "Accepted publickey" lines: 0 when every request rode a warm
  connection) and serve's CPU (user+sys from /proc) per request.

``--tree DIR`` runs serve from another copy of the sources (a folder holding
``control_server`` and ``host_executor``, e.g. ``git archive REV | tar -x -C DIR``) for a
before/after comparison on the same machine: ``python -m`` puts its working directory
first on the path, so serve runs in DIR with ``PYTHONPATH=DIR``; this script's raw runs
use that tree's executor too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "faults"))
sys.path.insert(0, str(ROOT / "tests" / "service"))
sys.path.insert(0, str(ROOT))

from sshd_harness import MAX_ADDRESSES, LoopbackSSHD, have_sshd  # noqa: E402

TEMPLATE = ("{#\ndescription: One step.\nparams: {}\n#}\n"
            "steps:\n  - name: one\n    command: {argv: [\"true\"]}\n")


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def ms(samples: list[float]) -> str:
    return (f"p50 {pct(samples, 50) * 1000:.1f} ms, p99 {pct(samples, 99) * 1000:.1f} ms "
            f"(n={len(samples)}, mean {statistics.fmean(samples) * 1000:.1f} ms)")


class Fleet:
    """``count`` hosts on ceil(count/16) LoopbackSSHD servers, one set of client files."""

    def __init__(self, root: Path, count: int) -> None:
        self.root = root
        self.servers: list[LoopbackSSHD] = []
        self.hosts: dict[str, tuple[LoopbackSSHD, str]] = {}
        left, index = count, 0
        while left > 0:
            n = min(left, MAX_ADDRESSES)
            server = LoopbackSSHD(root / f"sshd{index}", count=n, net=180 + index)
            self.servers.append(server)
            for i, addr in enumerate(server.addresses().values()):
                self.hosts[f"s{index}h{i + 1:02d}"] = (server, addr)
            left, index = left - n, index + 1
        self.ssh_config = root / "ssh_config"
        self.known_hosts = root / "known_hosts"
        self.inventory = root / "hosts.ini"

    def start(self) -> Fleet:
        blocks, known = [], []
        for name, (server, addr) in self.hosts.items():
            blocks.append(f"Host {name}\n  HostName {addr}\n  Port {server.port}\n  User root\n"
                          f"  IdentityFile {server.client_key}\n  IdentitiesOnly yes\n")
            known.append(f"[{addr}]:{server.port} {server.host_pub}\n")
        self.ssh_config.write_text("\n".join(blocks))
        self.known_hosts.write_text("".join(known))
        self.inventory.write_text("[nodes]\n" + "\n".join(self.hosts) + "\n")
        for server in self.servers:
            server.write_client_files()  # its own files (unused), so start() keeps ours
            server.start()
        return self

    def handshakes(self) -> int:
        return sum(s.log.read_text(errors="replace").count("Accepted publickey")
                   for s in self.servers)

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_serve(fleet: Fleet, work: Path, tree: Path | None = None
                ) -> tuple[subprocess.Popen[bytes], str, str]:
    from service_helpers import create_token, free_port

    templates = work / "templates"
    templates.mkdir()
    (templates / "one.yaml.j2").write_text(TEMPLATE)
    db = f"sqlite:///{work / 'hostplane.db'}"
    token = create_token(db, "bench", "operator")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "HOSTPLANE_DB"}
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    log = (work / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "control_server", "serve", "-i", str(fleet.inventory),
         "--db", db, "--listen", f"127.0.0.1:{port}", "--templates", str(templates),
         "-F", str(fleet.ssh_config), "--known-hosts", str(fleet.known_hosts),
         "--no-facts", "--no-watch", "--drain", "0", "--log-level", "warning"],
        cwd=tree or ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/v1/health", timeout=2).status_code == 200:
                return proc, url, token
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("serve did not start: " + (work / "serve.log").read_text()[-2000:])


async def post(client: httpx.AsyncClient, host: str) -> tuple[float, bool, str]:
    start = time.perf_counter()
    try:
        response = await client.post("/v1/requests", params={"wait": 60},
                                     json={"template": "one", "target": host})
        job = response.json() if response.status_code == 200 else {}
        ok = response.status_code == 200 and job.get("state") == "succeeded"
        why = "" if ok else f"{response.status_code} {response.text[:300]}"
    except httpx.HTTPError as exc:
        ok, why = False, f"{type(exc).__name__}: {exc}"
    return time.perf_counter() - start, ok, why


async def raw_floor(fleet: Fleet, host: str, count: int) -> tuple[list[float], list[float]]:
    """One raw channel at a time on an open asyncssh connection: ``true``, then the
    executor's launcher fed the same one-step request as serve's."""
    import asyncssh

    from control_server import executor_bundle
    from control_server.delivery import Delivery
    from control_server.sequence import adhoc_sequence, build_request

    server, addr = fleet.hosts[host]
    conn = await asyncssh.connect(addr, port=server.port, username="root",
                                  client_keys=[str(server.client_key)],
                                  known_hosts=str(fleet.known_hosts))
    launcher = Delivery(executor_bundle.build_bundle()).launcher()
    true_times, exec_times = [], []
    try:
        for _ in range(count):
            start = time.perf_counter()
            await conn.run("true", check=True)
            true_times.append(time.perf_counter() - start)
        for _ in range(count):
            request = build_request(adhoc_sequence(["true"], host), uuid.uuid4().hex)
            payload = json.dumps(request, separators=(",", ":")) + "\n"
            start = time.perf_counter()
            try:
                done = await conn.run(launcher, input=payload)
            except BrokenPipeError:  # the channel closed before the request was written
                print("raw executor run: channel closed before the request was sent")
                continue
            exec_times.append(time.perf_counter() - start)
            if '"event":"done"' not in str(done.stdout):
                raise SystemExit(f"raw executor run failed: {done.stdout!r} {done.stderr!r}")
    finally:
        conn.close()
    return true_times, exec_times


async def raw_sustained(fleet: Fleet, clients: int, seconds: float
                        ) -> tuple[int, list[float], float]:
    """The host side's ceiling: ``clients`` concurrent one-step executor runs on raw
    channels over one open connection per host, round-robin, for ``seconds``."""
    import asyncssh

    from control_server import executor_bundle
    from control_server.delivery import Delivery
    from control_server.sequence import adhoc_sequence, build_request

    gate = asyncio.Semaphore(8)  # under sshd's MaxStartups (10)

    async def connect(server: LoopbackSSHD, addr: str) -> asyncssh.SSHClientConnection:
        async with gate:
            return await asyncssh.connect(addr, port=server.port, username="root",
                                          client_keys=[str(server.client_key)],
                                          known_hosts=str(fleet.known_hosts))

    conns = await asyncio.gather(*(connect(s, a) for s, a in fleet.hosts.values()))
    launcher = Delivery(executor_bundle.build_bundle()).launcher()
    times: list[float] = []
    errors = 0
    end = time.perf_counter() + seconds

    async def worker(offset: int) -> None:
        nonlocal errors
        i = offset
        while time.perf_counter() < end:
            request = build_request(adhoc_sequence(["true"], "h"), uuid.uuid4().hex)
            payload = json.dumps(request, separators=(",", ":")) + "\n"
            start = time.perf_counter()
            i += 1
            try:
                done = await conns[(i - 1) % len(conns)].run(launcher, input=payload)
            except BrokenPipeError:  # counted, as a request the API failed would be
                errors += 1
                continue
            times.append(time.perf_counter() - start)
            errors += '"event":"done"' not in str(done.stdout)

    start = time.perf_counter()
    try:
        await asyncio.gather(*(worker(c) for c in range(clients)))
    finally:
        for conn in conns:
            conn.close()
    return errors, times, time.perf_counter() - start


async def sequential(url: str, token: str, host: str, count: int) -> list[float]:
    headers = {"Authorization": f"Bearer {token}"}
    times = []
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=90) as client:
        for _ in range(count):
            took, ok, why = await post(client, host)
            if not ok:
                raise SystemExit(f"request failed: {why}")
            times.append(took)
    return times


async def sustained(url: str, token: str, hosts: list[str], clients: int, seconds: float
                    ) -> tuple[list[float], list[str], float]:
    headers = {"Authorization": f"Bearer {token}"}
    times: list[float] = []
    errors: list[str] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=90,
                                 limits=limits) as client:
        end = time.perf_counter() + seconds

        async def worker(offset: int) -> None:
            i = offset
            while time.perf_counter() < end:
                took, ok, why = await post(client, hosts[i % len(hosts)])
                i += 1
                times.append(took)
                if not ok:
                    errors.append(why)

        start = time.perf_counter()
        await asyncio.gather(*(worker(c) for c in range(clients)))
        wall = time.perf_counter() - start
    return times, errors, wall


async def warm_all(url: str, token: str, hosts: list[str]) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as client:
        results = await asyncio.gather(*(post(client, h) for h in hosts))
    bad = [(h, why) for h, (_t, ok, why) in zip(hosts, results, strict=True) if not ok]
    if bad:
        raise SystemExit(f"warm-up failed: {bad[:3]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=30)
    parser.add_argument("--samples", type=int, default=200, help="sequential requests")
    parser.add_argument("--profile", metavar="SVG", help="py-spy record serve during the "
                        "throughput run into SVG (flame graph; .txt: collapsed stacks)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--tree", type=Path, help="run serve from the sources in this folder")
    args = parser.parse_args()
    if args.tree is not None:  # the raw runs' executor, too, is the tree's (its digest)
        sys.path.insert(0, str(args.tree.resolve()))
    if not have_sshd():
        raise SystemExit("needs root and /usr/sbin/sshd")
    work = Path(tempfile.mkdtemp(prefix="serve-latency-"))
    fleet = Fleet(work / "fleet", args.hosts).start()
    serve: subprocess.Popen[bytes] | None = None
    spy: subprocess.Popen[bytes] | None = None
    try:
        serve, url, token = start_serve(fleet, work, args.tree)
        hosts = list(fleet.hosts)
        print(f"# serve: warm connections ({args.hosts} hosts on {len(fleet.servers)} sshd, "
              f"{os.cpu_count()} CPUs)")
        asyncio.run(warm_all(url, token, hosts))
        asyncio.run(sequential(url, token, hosts[0], 20))  # settle
        print(f"handshakes after warm-up: {fleet.handshakes()} (one per host)")
        raw_true, raw_exec = asyncio.run(raw_floor(fleet, hosts[0], args.samples))
        api = asyncio.run(sequential(url, token, hosts[0], args.samples))
        print(f"raw channel `true`, open connection:   {ms(raw_true)}")
        print(f"raw channel, executor one-step request: {ms(raw_exec)}")
        print(f"API POST ?wait one-step, warm host:     {ms(api)}")
        raw_errors, raw_times, raw_wall = asyncio.run(raw_sustained(fleet, args.clients,
                                                                   args.seconds))
        print(f"raw sustained (host-side ceiling): {len(raw_times)} executor runs in "
              f"{raw_wall:.1f} s, {args.clients} at once over {len(hosts)} open connections: "
              f"{len(raw_times) / raw_wall:.1f} runs/s, {raw_errors} errors; "
              f"latency {ms(raw_times)}")
        before, cpu0 = fleet.handshakes(), cpu_seconds(serve.pid)
        if args.profile:
            spy = subprocess.Popen([shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy"), "record", "-p", str(serve.pid), "-o",
                                    args.profile, "-r", "100", "--nonblocking", "-d",
                                    str(int(args.seconds)),
                                    *(["-f", "raw"] if args.profile.endswith(".txt") else [])],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1)
        times, errors, wall = asyncio.run(sustained(url, token, hosts, args.clients,
                                                    args.seconds))
        cpu = cpu_seconds(serve.pid) - cpu0
        print(f"sustained: {len(times)} requests in {wall:.1f} s over {len(hosts)} hosts, "
              f"{args.clients} clients: {len(times) / wall:.1f} requests/s, "
              f"{len(errors)} errors, {fleet.handshakes() - before} new handshakes; "
              f"latency {ms(times)}; serve CPU {cpu:.1f} s "
              f"({cpu / max(1, len(times)) * 1000:.1f} ms a request, "
              f"{cpu / wall * 100:.0f}% of one core)")
        for why in errors[:5]:
            print("  error:", why)
    finally:
        if spy is not None:
            spy.wait(120)
        if serve is not None:
            serve.terminate()
            serve.wait(30)
        fleet.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print("work folder:", work)


if __name__ == "__main__":
    main()
