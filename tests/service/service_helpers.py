"""Helpers of the HTTP API tests: a real ``hostplane serve`` process on loopback, tokens
made with the CLI, an inventory of local hosts (the real executor runs as a subprocess),
SSE parsing. Tests import this module, never ``conftest``."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 180.0  # generous: a loaded CI machine takes its time to import


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``hostplane ARGS`` as a subprocess (what a user types)."""
    env = {k: v for k, v in os.environ.items() if k != "HOSTPLANE_DB"}
    return subprocess.run([sys.executable, "-m", "control_server", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def create_token(db: str, name: str, role: str) -> str:
    done = cli("tokens", "create", name, "--role", role, "--db", db)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def mem_total_mib() -> int:
    """What the facts of a local host will say (MemTotal, in MiB)."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    raise RuntimeError("no MemTotal in /proc/meminfo")


def write_inventory(path: Path, dead_port: int) -> Path:
    """h1 (1024 MiB left), h2 (3000 MiB left, gpu), h3 (dedicated to acme), dead (refused)."""
    total = mem_total_mib()
    path.write_text(
        "[kvm]\n"
        f"h1 ansible_connection=local reserved_memory_mib={total - 1024}\n"
        f"h2 ansible_connection=local reserved_memory_mib={total - 3000} "
        "capabilities=gpu,nvme\n"
        "h3 ansible_connection=local dedicated_to=acme\n"
        "\n[lost]\n"
        f"dead ansible_host=127.0.0.1 ansible_port={dead_port} ansible_connection=ssh\n"
    )
    return path


def write_templates(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "steps3.yaml.j2").write_text(
        "{#\ndescription: Say hello, sleep, say bye.\nparams:\n"
        "  seconds: {type: int, default: 0, min: 0, max: 600, description: Sleep.}\n#}\n"
        "steps:\n"
        "  - name: hello\n    command: {argv: [echo, hello]}\n"
        "  - name: sleep\n    command: {argv: [sleep, \"{{ seconds }}\"]}\n"
        "  - name: bye\n    command: {argv: [echo, bye]}\n"
    )
    (folder / "instance_like.yaml.j2").write_text(
        "{#\ndescription: What placement fills in.\nparams:\n"
        "  name: {required: true, pattern: '[a-z0-9-]+', description: Name.}\n"
        "  memory_mib: {type: int, default: 1, description: Memory.}\n"
        "  vcpus: {type: int, default: 1, description: CPUs.}\n"
        "  seconds: {type: int, default: 0, min: 0, max: 60, description: Sleep.}\n#}\n"
        "steps:\n"
        "  - name: report\n"
        "    command: {argv: [echo, \"{{ name }} {{ memory_mib }} {{ vcpus }}\"]}\n"
        "  - name: hold\n    command: {argv: [sleep, \"{{ seconds }}\"]}\n"
    )
    (folder / "typed.yaml.j2").write_text(
        "{#\ndescription: One param of each type.\nparams:\n"
        "  count: {type: int, description: An int.}\n"
        "  ratio: {type: float, description: A float.}\n"
        "  flag: {type: bool, description: A bool.}\n"
        "  items: {type: list, description: A list.}\n"
        "  labels: {type: dict, description: A map.}\n"
        "  where: {type: path, description: A path.}\n"
        "  label: {description: A string.}\n"
        "  token: {secret: true, description: A secret.}\n#}\n"
        "steps:\n  - name: noop\n    command: {argv: ['true']}\n"
    )
    return folder


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    url: str
    db: str
    log: Path
    args: tuple[str, ...]

    def client(self, token: str | None, timeout: float = 60) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def logs(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class Fleet:
    """The shared server (see conftest), its tokens and files."""

    server: Server
    operator: str
    reader: str
    workdir: Path
    inventory: Path
    templates: Path


def start_server(workdir: Path, inventory: Path, db: str, *extra: str,
                 facts: bool = True) -> Server:
    """Start serve and wait until it answers (and, with ``facts``, has gathered facts)."""
    port = free_port()
    log = workdir / f"serve-{port}.log"
    args = ("serve", "-i", str(inventory), "--db", db, "--listen", f"127.0.0.1:{port}",
            "--drain", "0", *extra)
    env = {k: v for k, v in os.environ.items() if k != "HOSTPLANE_DB"}
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "control_server", *args], cwd=REPO,
                                stdout=out, stderr=subprocess.STDOUT, env=env)
    server = Server(proc, f"http://127.0.0.1:{port}", db, log, args)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"serve exited with {proc.returncode}:\n{server.logs()}")
        try:
            health = httpx.get(server.url + "/v1/health", timeout=2)
            if health.status_code == 200 and (health.json()["facts_ready"] or not facts):
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    server.kill()
    raise RuntimeError(f"serve did not start in {START_TIMEOUT}s:\n{server.logs()}")


def sse_events(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """Events of a text/event-stream: {id, event, data (parsed JSON)}; comments skipped."""
    current: dict[str, Any] = {}
    data: list[str] = []
    for line in lines:
        if line == "":
            if data:
                yield {**current, "data": json.loads("\n".join(data))}
            current, data = {}, []
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "data":
                data.append(value)
            elif field in ("id", "event"):
                current[field] = value


def wait_for_job(client: httpx.Client, job_id: int, states: tuple[str, ...],
                 timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        if job["state"] in states or time.monotonic() > deadline:
            return job
        time.sleep(0.1)


def wait_for_step(client: httpx.Client, job_id: int, host: str, index: int,
                  timeout: float = 30) -> None:
    """Until ``host`` has started step ``index`` of the job."""
    deadline = time.monotonic() + timeout
    with client.stream("GET", f"/v1/jobs/{job_id}/events") as response:
        for event in sse_events(response.iter_lines()):
            inner = event["data"]["payload"].get("event") or {}
            if (event["data"]["host"] == host and inner.get("event") == "step_start"
                    and inner.get("index") == index):
                return
            if time.monotonic() > deadline:
                break
    raise AssertionError(f"{host} did not start step {index} of job {job_id}")
