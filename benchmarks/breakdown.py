"""Where hostplane's time goes, per host: control side and host side, one host at a time.

    .venv/bin/python benchmarks/breakdown.py --lab hostplane-bench [--runs 15]

Fan-out timings on a shared machine are noisy; this measures the pieces one after the
other on ONE lab host (the first), many times, and reports medians:

- control side (this process, ``time.process_time``): an SSH handshake (asyncssh), the
  floor's channel (``sh -c`` with the ten commands), hostplane's plan (render + validate
  one host), one steady-state sequence (``Delivery.run``: one channel, the executor, 22
  events parsed), the runner around it (``runner.execute`` for one host, connection
  included), and the CLI's fixed cost (interpreter + imports, a subprocess);
- host side (a small Python timer run ON the host over SSH, ``RUSAGE_CHILDREN``): the
  floor's ``sh -c``, ``python3`` start-up, the executor's start-up (``--version``), the
  whole bench10 request through the cached zipapp, and variants that show what each part
  costs: imported from the unpacked folder (no runpy/zipimport), with ``-S`` (no site),
  without the journal's fsyncs, and the ten commands through plain ``subprocess.run``.

The lab must be up (``fanout.py --keep-lab`` leaves one) and hostplane run once on it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from fanout import (  # noqa: E402
    COMMANDS,
    SHELL_LINE,
    TEMPLATE,
    TEMPLATES,
    USER,
    CpuGroup,
    Host,
    tool_env,
)

# Runs ON the host (python3 >= 3.8, stdlib only). argv[1]: base64 JSON of the parameters.
HOST_TIMER = r'''
import base64, json, os, resource, subprocess, sys, time
p = json.loads(base64.b64decode(sys.argv[1]))
runs, pyz, unpacked, req = p["runs"], os.path.expanduser(p["pyz"]), os.path.expanduser(p["dir"]), p["request"].encode()
load = "import sys; sys.path.insert(0, %r); " % unpacked
main = "from host_executor.main import main; sys.exit(main())"
nosync = "import host_executor.journal as j; j._sync = lambda fd: None; "
cases = [
    ("floor: sh -c (10 commands)", ["sh", "-c", p["shell"]], b""),
    ("python3 -c pass", ["python3", "-c", "pass"], b""),
    ("python3 -S -c pass", ["python3", "-S", "-c", "pass"], b""),
    ("python3 -S: 10 x subprocess.run", ["python3", "-S", "-c",
        "import subprocess; [subprocess.run(a, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for a in %r]" % (p["commands"],)], b""),
    ("python3 -S: 10 x os.posix_spawnp", ["python3", "-S", "-c",
        "import os; [os.waitpid(os.posix_spawnp(a[0], a, os.environ), 0) for a in %r]" % (p["commands"],)], b""),
    ("executor --version (start-up only)", ["python3", pyz, "--version"], b""),
    ("executor bench10 (as hostplane runs it)", ["python3", pyz], req),
    ("  from the unpacked dir (no runpy/zip)", ["python3", "-c", load + main], req),
    ("  + python3 -S (no site)", ["python3", "-S", "-c", load + main], req),
    ("  + no journal fsync", ["python3", "-S", "-c", load + nosync + main], req),
    ("executor imports only, -S, unpacked", ["python3", "-S", "-c", load + "import host_executor.main"], b""),
]
walls = {name: [] for name, _, _ in cases}
cpus = {name: [] for name, _, _ in cases}
for _ in range(runs):  # interleaved: a busy spell on the machine hits every case alike
    for name, argv, stdin in cases:
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run(argv, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        walls[name].append(time.perf_counter() - t0)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus[name].append(r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime)
        if proc.returncode != 0:
            sys.exit("%s: exit %d: %s" % (name, proc.returncode, proc.stderr[-500:]))
out = [{"case": name, "wall": sorted(walls[name])[runs // 2], "wall_min": min(walls[name]),
        "cpu": sorted(cpus[name])[runs // 2]} for name, _, _ in cases]
# -X importtime of the executor's start-up: the smallest self time of each module.
best = {}
for _ in range(runs):
    proc = subprocess.run(["python3", "-X", "importtime", pyz, "--version"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for line in proc.stderr.decode().splitlines():
        parts = [x.strip() for x in line.split("|")]
        if len(parts) == 3 and parts[0].startswith("import time:") and parts[1].isdigit():
            best[parts[2].strip()] = min(best.get(parts[2].strip(), 10**9), int(parts[1]))
print(json.dumps({"cases": out, "imports": sorted(best.items(), key=lambda kv: -kv[1])}))
'''


def _median(values: list[float]) -> float:
    return statistics.median(values)


async def _cpu_wall(fn: Callable[[], Awaitable[Any]], runs: int) -> tuple[float, float]:
    cpus, walls = [], []
    for _ in range(runs):
        c0, t0 = time.process_time(), time.perf_counter()
        await fn()
        cpus.append(time.process_time() - c0)
        walls.append(time.perf_counter() - t0)
    return _median(cpus), _median(walls)


async def control_side(inventory: Path, lab: Path, runs: int) -> list[tuple[str, float, float]]:
    import asyncssh

    from control_server import api
    from control_server.events import EventStream
    from control_server.inventory import Inventory
    from control_server.runner import RunOptions, execute

    inv = Inventory.load([str(inventory)])
    host = inv.hosts("all")[0]
    address = str(host.vars["ansible_host"])
    key = asyncssh.read_private_key(str(lab / "id_ed25519"))
    known = asyncssh.read_known_hosts(str(lab / "known_hosts"))
    config = api.RunConfig(options=RunOptions(forks=1), templates_dirs=(TEMPLATES,))
    task = api.TemplateTask(TEMPLATE)
    rows: list[tuple[str, float, float]] = []

    async def connect() -> asyncssh.SSHClientConnection:
        return await asyncssh.connect(address, username=USER, client_keys=[key],
                                      known_hosts=known, config=None, agent_path=None)

    async def handshake() -> None:
        conn = await connect()
        conn.close()
        await conn.wait_closed()

    rows.append(("floor: SSH handshake (asyncssh)", *await _cpu_wall(handshake, runs)))
    conn = await connect()
    floor_cmd = f"sh -c {shlex.quote(SHELL_LINE)}"

    async def floor_channel() -> None:
        await conn.run(floor_cmd, check=True)

    rows.append(("floor: one channel, sh -c 10 commands", *await _cpu_wall(floor_channel, runs)))
    conn.close()

    async def plan() -> None:
        api.plan_hosts([host], task, {}, config)

    rows.append(("hostplane: plan one host (render, validate)", *await _cpu_wall(plan, runs)))
    plans = api.plan_hosts([host], task, {}, config)
    transport = plans[0].transport
    await transport.connect()

    async def hp_connect() -> None:
        await transport.close()
        await transport.connect()

    rows.append(("hostplane: SSH handshake (transport)", *await _cpu_wall(hp_connect, runs)))
    uploaded: list[bool] = []

    async def sequence() -> None:
        outcome = await plans[0].delivery.run(transport, plans[0].request, lambda _e: None)
        uploaded.append(outcome.uploaded)
        if outcome.exit_status != 0:
            raise SystemExit(f"sequence failed: {outcome.stderr}")

    await sequence()  # make sure the executor is there (steady state)
    uploaded.clear()
    rows.append(("hostplane: one sequence (Delivery.run)", *await _cpu_wall(sequence, runs)))
    if any(uploaded):
        print("note: the executor was uploaded during the runs (its sources changed)")
    await transport.close()

    async def whole() -> None:
        fresh = api.plan_hosts([host], task, {}, config)
        result = await execute(fresh, config.options, EventStream([]), TEMPLATE)
        if result.exit_code != 0:
            raise SystemExit(f"run failed: {result.hosts}")

    rows.append(("hostplane: plan + runner.execute, 1 host", *await _cpu_wall(whole, runs)))
    return rows


def cli_fixed_cost(runs: int, env: dict[str, str]) -> list[tuple[str, float, float]]:
    import resource

    def cost(argv: list[str]) -> tuple[float, float]:
        cpus, walls = [], []
        for _ in range(runs):
            ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            subprocess.run(argv, check=True, env=env, stdout=subprocess.DEVNULL)
            walls.append(time.perf_counter() - t0)
            ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpus.append(ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime)
        return _median(cpus), _median(walls)

    py = sys.executable
    return [
        ("control: python -c pass", *cost([py, "-c", "pass"])),
        ("control: import asyncssh (the floor's imports)", *cost([py, "-c", "import asyncssh"])),
        ("control: import sqlalchemy", *cost([py, "-c", "import sqlalchemy"])),
        ("control: import control_server.cli (what `hostplane` loads first)",
         *cost([py, "-c", "import control_server.cli"])),
        ("control: hostplane --help", *cost([str(Path(py).parent / "hostplane"), "--help"])),
    ]


def host_side(inventory: Path, lab: Path, runs: int) -> dict[str, Any]:
    from control_server import api, executor_bundle
    from control_server.inventory import Inventory

    inv = Inventory.load([str(inventory)])
    host = inv.hosts("all")[0]
    config = api.RunConfig(templates_dirs=(TEMPLATES,))
    plan = api.plan_hosts([host], api.TemplateTask(TEMPLATE), {}, config)[0]

    async def ensure_cached() -> None:  # this very executor, whatever changed meanwhile
        try:
            await plan.delivery.run(plan.transport, plan.request, lambda _e: None)
        finally:
            await plan.transport.close()

    asyncio.run(ensure_cached())
    digest = plan.delivery.bundle.digest
    base = f"~/.cache/hostplane/{executor_bundle.executor_filename(digest)}"
    params = {"runs": runs, "pyz": base, "dir": base[: -len(".pyz")] + ".d",
              "request": json.dumps(plan.request), "shell": SHELL_LINE,
              "commands": [list(c) for c in COMMANDS]}
    arg = base64.b64encode(json.dumps(params).encode()).decode()
    ssh = ["ssh", "-F", str(lab / "ssh_config"), "-o", "BatchMode=yes", host.name,
           f"python3 - {arg}"]
    proc = subprocess.run(ssh, input=HOST_TIMER.encode(), capture_output=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"host timer failed: {proc.stderr.decode()[-2000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lab", default="hostplane-bench")
    p.add_argument("--lab-folder", type=Path, default=None)
    p.add_argument("--runs", type=int, default=15)
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--cpu-shares", type=int, default=0,
                   help="as fanout.py: this process and the lab host in one cpu cgroup")
    args = p.parse_args()

    from control_server.lab import default_folder

    lab = args.lab_folder or default_folder(args.lab)
    inventory = Path(tempfile.mkdtemp(prefix="hostplane-breakdown-")) / "one-host.ini"
    lines = (lab / "hosts.ini").read_text().splitlines()
    first = next(i for i, line in enumerate(lines) if "ansible_host=" in line)
    rest = [line for line in lines[first + 1:] if "ansible_host=" not in line]
    inventory.write_text("\n".join([*lines[: first + 1], *rest, ""]))
    print(f"load average {os.getloadavg()}")
    group = None
    if args.cpu_shares:
        name = lines[first].split()[0]
        cid = subprocess.run(["docker", "inspect", "-f", "{{.Id}}", name], capture_output=True,
                             text=True, check=True).stdout.strip()
        one_host = [Host(name, "", cid)]
        group = CpuGroup(f"{args.lab}-breakdown", args.cpu_shares, one_host)
        print(f"CPU scheduling: {group.describe()}")
    try:
        env = tool_env(Path(tempfile.gettempdir()) / f"{args.lab}-breakdown")
        os.environ.update(env)
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
        control = asyncio.run(control_side(inventory, lab, args.runs)) + cli_fixed_cost(
            max(5, args.runs // 3), env)
        hosts_result = host_side(inventory, lab, args.runs)
    finally:
        if group is not None:
            group.restore()
    print("\nControl side (one host, medians)\n")
    print("| piece | CPU ms | wall ms |\n| --- | ---: | ---: |")
    for name, cpu, wall in control:
        print(f"| {name} | {cpu * 1000:.1f} | {wall * 1000:.1f} |")
    hosts = hosts_result
    print("\nHost side (on the host, medians)\n")
    print("| what runs on the host | CPU ms | wall ms | min wall ms |\n| --- | ---: | ---: | ---: |")
    for case in hosts["cases"]:
        print(f"| {case['case']} | {case['cpu'] * 1000:.1f} | {case['wall'] * 1000:.1f} "
              f"| {case['wall_min'] * 1000:.1f} |")
    print("\nExecutor start-up imports (-X importtime, smallest self time of "
          f"{args.runs} runs, top 15)\n")
    print("| module | self us |\n| --- | ---: |")
    for name, us in hosts["imports"][:15]:
        print(f"| {name} | {us} |")
    total = sum(us for _, us in hosts["imports"])
    print(f"| (all {len(hosts['imports'])} modules) | {total} |")
    print(f"\nload average {os.getloadavg()}")
    if args.json:
        args.json.write_text(json.dumps({"control": control, "host": hosts}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
