"""Fan-out benchmark: the same ten small commands on N lab hosts, through every tool.

    .venv/bin/python benchmarks/fanout.py --hosts 10,30 --scale 100,200
    .venv/bin/python benchmarks/fanout.py --loopback -n 30,100,200 --rounds 3

``--loopback`` needs no Docker: ``benchmarks/loopback.py`` starts sshd servers on this
machine answering on N 127.x addresses, one per host (16 addresses per sshd), with their
own keys, known_hosts, an ssh_config with one ``Host`` block per host and the hosts' HOME
in the benchmark's folder; host CPU is the servers' cgroup (see loopback.py). It compares
two workloads side by side, each with its own floor: **1 command** (``floor-1``: the
floor's ``sh -c true``; ``exec``/``exec-norecord``: ``hostplane exec -F ssh_config ...
all -- true``; ``pyinfra-1``: ``pyinfra INV exec -- true``; ``ansible-1``: ``ansible all
-m command -a true``) and **10 steps** (the tools below; hostplane via the ssh_config's
aliases), reports ratios to the floor and to pyinfra of the same run, and issue 9's
targets as met / not met. Root is fine; a user who is not root can run it too (a high
port, that user's login only).

Tools (``--tools``):

- ``floor``: one raw asyncssh connection per host running the ten commands in one
  ``sh -c``, all hosts at once, in one process: the least any SSH tool can do.
- ``openssh``: one ``ssh -F lab/ssh_config HOST "sh -c '...'"`` per host, all at once.
- ``hostplane``: ``hostplane run -i INV all bench10 --templates benchmarks/templates
  -f N --json`` (the CLI, a fresh process: interpreter start-up and imports included;
  the run is recorded in the job store, as by default).
- ``hostplane-norecord``: the same with ``--no-record``.
- ``hostplane-api``: the same through the library API (``control_server.api.run``) in a
  fresh worker process, timed after the imports, like the floor.
- ``paramiko``: ``hostplane run ... --transport paramiko``.
- ``ansible``: ansible-playbook with ten ``command`` tasks, gather_facts off, forks = N,
  pipelining, ControlPersist (the masters' CPU is counted: see ``_reap_ssh_masters``).
- ``pyinfra``: pyinfra with ten ``server.shell`` operations, ``--parallel N -y``.

For each N, each tool is measured ``--repeat`` times, interleaved (round r runs every
tool once) so that load from anything else on the machine hits all tools alike; the
median is reported. Wall time is ``time.perf_counter()``; control-side CPU is
``getrusage(RUSAGE_CHILDREN)`` deltas for subprocess tools (children and their waited
descendants), and ``time.process_time()`` inside the worker for in-process tools. Host-side
CPU (the lab containers' cgroup CPU time, summed) is reported too: on a one-machine lab
the hosts share the control side's cores, so host-side work shows up in wall time here,
where on a real fleet every host has its own.

hostplane is run once untimed before timing so the executor is cached on every host (the
steady state); ``--cold`` also times runs that start with the executor removed from every
host (upload + first unpack included).

The lab (``control_server.lab``) is one set of max(N) containers (``--lab-size``); each N
uses its first N hosts. ``--keep-lab`` leaves it up for the next run (``lab_up`` reuses it
when the size matches); otherwise it is removed at the end.

On a machine others use, ``--cpu-shares`` puts this process and the lab hosts in one cpu
cgroup (see ``CpuGroup``), and ``--profile DIR`` adds a py-spy profile of one hostplane
run per N. ``benchmarks/breakdown.py`` takes one host's costs apart, piece by piece.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import itertools
import json
import os
import platform
import resource
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TEMPLATES = HERE / "templates"
TEMPLATE = "bench10"
BIN = Path(sys.executable).parent
USER = "hostplane"

# The ten commands every tool runs, in this order (the template must say the same).
COMMANDS: tuple[tuple[str, ...], ...] = (
    ("true",),
    ("echo", "x"),
    ("uname", "-r"),
    ("cat", "/etc/hostname"),
    ("id", "-u"),
    ("date", "+%s"),
    ("pwd",),
    ("whoami",),
    ("cat", "/proc/uptime"),
    ("sleep", "0"),
)
OUTPUT_LINES = 8  # lines the ten commands print together (true and sleep print nothing)
SHELL_LINE = " && ".join(shlex.join(argv) for argv in COMMANDS)
# The one-command workload (hostplane exec, pyinfra exec, the floor's sh -c).
ONE_COMMAND: tuple[str, ...] = ("true",)
ONE_SHELL_LINE = shlex.join(ONE_COMMAND)

# The ten-command workload's tools, then the one-command workload's (``*-1``; ``exec`` is
# ``hostplane exec``).
TEN_TOOLS = ("floor", "hostplane", "hostplane-norecord", "hostplane-api", "paramiko",
             "openssh", "pyinfra", "ansible")
ONE_TOOLS = ("floor-1", "exec", "exec-norecord", "pyinfra-1", "ansible-1")
ALL_TOOLS = (*TEN_TOOLS, *ONE_TOOLS)
SCALE_TOOLS = ("floor", "hostplane", "hostplane-api", "openssh")
LOOPBACK_TOOLS = ("floor-1", "exec", "exec-norecord", "pyinfra-1", "ansible-1",
                  "floor", "hostplane", "pyinfra", "ansible")
IN_PROCESS = ("floor", "floor-1", "hostplane-api")
ANSIBLE_TOOLS = ("ansible", "ansible-1")
LABELS = {"floor": "floor", "floor-1": "floor", "hostplane": "hostplane run",
          "hostplane-norecord": "hostplane run --no-record", "hostplane-api": "library API",
          "exec": "hostplane exec", "exec-norecord": "hostplane exec --no-record",
          "pyinfra": "pyinfra (10 ops)", "pyinfra-1": "pyinfra exec",
          "ansible": "ansible-playbook", "ansible-1": "ansible -m command"}


def workload(tool: str) -> str:
    return "1 command" if tool in ONE_TOOLS else "10 steps"


def floor_of(tool: str) -> str:
    return "floor-1" if tool in ONE_TOOLS else "floor"


def pyinfra_of(tool: str) -> str:
    return "pyinfra-1" if tool in ONE_TOOLS else "pyinfra"


# --- lab and per-N files --------------------------------------------------------------


@dataclass
class Host:
    name: str
    address: str
    container_id: str  # "" on a loopback fleet
    port: int = 22


@dataclass
class LabInfo:
    """The hosts and the client's files: the Docker lab's, or a loopback fleet's."""

    folder: Path
    key: Path
    known_hosts: Path
    ssh_config: Path  # one Host block per host
    hosts: list[Host]
    user: str = USER


@dataclass
class Setup:
    """Everything one N needs, generated in ``workdir``."""

    n: int
    lab: LabInfo
    workdir: Path
    hosts: list[Host]
    inventory: Path  # Ansible INI, also hostplane's
    pyinfra_inventory: Path
    pyinfra_deploy: Path
    playbook: Path
    ansible_cfg: Path
    control_dir: Path  # ansible's ControlPath folder
    hostplane_args: list[str] = field(default_factory=list)  # -i INV (and -F, --known-hosts)
    extra_env: dict[str, str] = field(default_factory=dict)  # for every measured process


def lab_info(lab: Any) -> LabInfo:
    return LabInfo(Path(lab.folder), Path(lab.key), Path(lab.known_hosts),
                   Path(lab.ssh_config),
                   [Host(h.name, h.address, h.container_id) for h in lab.hosts])


def write_setup(lab: LabInfo, n: int, root: Path, aliases: bool = False,
                extra_env: dict[str, str] | None = None) -> Setup:
    """Every tool's files for the first ``n`` hosts. ``aliases``: hostplane gets an
    inventory of ``Host`` names and ``-F ssh_config --known-hosts`` (as an operator with an
    ssh_config runs it); otherwise the explicit INI inventory that ansible reads too."""
    workdir = root / f"n{n}"
    (workdir / "logs").mkdir(parents=True, exist_ok=True)
    hosts = lab.hosts[:n]
    user = lab.user
    common = f"-o UserKnownHostsFile={lab.known_hosts} -o StrictHostKeyChecking=yes"
    inventory = workdir / "hosts.ini"
    inventory.write_text("\n".join([
        "[lab]",
        *(f"{h.name} ansible_host={h.address} ansible_user={user} "
          + (f"ansible_port={h.port} " if h.port != 22 else "")
          + f"ansible_ssh_private_key_file={lab.key}" for h in hosts),
        "", "[lab:vars]", f"ansible_ssh_common_args='{common}'",
        "ansible_python_interpreter=/usr/bin/python3", ""]))
    (workdir / "floor.json").write_text(json.dumps({
        "hosts": [[h.address, h.port] for h in hosts], "user": user, "key": str(lab.key),
        "known_hosts": str(lab.known_hosts)}))
    hostplane_args = ["-i", str(inventory)]
    if aliases:
        alias_inventory = workdir / "aliases.ini"
        alias_inventory.write_text("[lab]\n" + "".join(f"{h.name}\n" for h in hosts))
        hostplane_args = ["-i", str(alias_inventory), "-F", str(lab.ssh_config),
                          "--known-hosts", str(lab.known_hosts)]

    pyinfra_inventory = workdir / "pyinfra_inventory.py"
    entries = ",\n".join(
        f"    ({h.name!r}, {{'ssh_hostname': {h.address!r}, 'ssh_port': {h.port}, "
        f"'ssh_user': {user!r}, "
        f"'ssh_key': {str(lab.key)!r}, 'ssh_known_hosts_file': {str(lab.known_hosts)!r}, "
        f"'ssh_strict_host_key_checking': 'yes'}})" for h in hosts)
    pyinfra_inventory.write_text(f"lab = [\n{entries},\n]\n")
    pyinfra_deploy = workdir / "pyinfra_deploy.py"
    ops = "".join(f"server.shell(name={shlex.join(argv)!r}, commands=[{shlex.join(argv)!r}])\n"
                  for argv in COMMANDS)
    pyinfra_deploy.write_text(f"from pyinfra.operations import server\n\n{ops}")

    playbook = workdir / "playbook.yml"
    tasks = "".join(f"    - name: {json.dumps(shlex.join(argv))}\n"
                    f"      command: {{argv: {json.dumps(list(argv))}}}\n"
                    f"      changed_when: false\n" for argv in COMMANDS)
    playbook.write_text(f"- hosts: all\n  gather_facts: false\n  tasks:\n{tasks}")
    control_dir = workdir / "cp"
    ansible_cfg = workdir / "ansible.cfg"
    ansible_cfg.write_text("\n".join([
        "[defaults]", f"forks = {n}", "host_key_checking = True",
        "interpreter_python = /usr/bin/python3", "retry_files_enabled = False",
        f"local_tmp = {workdir / 'ansible-tmp'}", "",
        "[ssh_connection]", "pipelining = True",
        "ssh_args = -o ControlMaster=auto -o ControlPersist=60s",
        f"control_path_dir = {control_dir}", ""]))
    return Setup(n, lab, workdir, hosts, inventory, pyinfra_inventory, pyinfra_deploy,
                 playbook, ansible_cfg, control_dir, hostplane_args, dict(extra_env or {}))


def check_template() -> None:
    """The template runs exactly COMMANDS, so every tool does the same work."""
    from control_server.templating import TemplateLibrary

    seq = TemplateLibrary((TEMPLATES,)).render(TEMPLATE, {}, "check")
    argvs = tuple(tuple(step["args"]["argv"]) for step in seq.steps)
    if argvs != COMMANDS or any(step["action"] != "command" for step in seq.steps):
        raise SystemExit(f"{TEMPLATES / TEMPLATE}.yaml.j2 does not run COMMANDS: {argvs}")


# --- host-side CPU (the lab containers' cgroups) --------------------------------------


def _cgroup_cpu_file(container_id: str) -> tuple[Path, bool] | None:
    """(file, is_v1) holding the container's CPU time, if this machine exposes it."""
    v1 = Path(f"/sys/fs/cgroup/cpuacct/docker/{container_id}/cpuacct.usage")
    if v1.is_file():
        return v1, True
    for v2 in (Path(f"/sys/fs/cgroup/system.slice/docker-{container_id}.scope/cpu.stat"),
               Path(f"/sys/fs/cgroup/docker/{container_id}/cpu.stat")):
        if v2.is_file():
            return v2, False
    return None


class HostCPU:
    def __init__(self, hosts: Sequence[Host]) -> None:
        found = [_cgroup_cpu_file(h.container_id) for h in hosts]
        self.files = [f for f in found if f is not None] if all(found) else []

    def seconds(self) -> float | None:
        if not self.files:
            return None
        total = 0.0
        for path, v1 in self.files:
            text = path.read_text()
            if v1:
                total += int(text) / 1e9
            else:
                usage = next(line for line in text.splitlines() if line.startswith("usage_usec"))
                total += int(usage.split()[1]) / 1e6
        return total


# --- CPU scheduling on a shared machine --------------------------------------------------

CPU_ROOT = Path("/sys/fs/cgroup/cpu")  # cgroup v1 "cpu" hierarchy (cpuacct is separate)


def _container_pids(container_id: str) -> list[int]:
    for path in (Path(f"/sys/fs/cgroup/cpuacct/docker/{container_id}/cgroup.procs"),
                 Path(f"/sys/fs/cgroup/system.slice/docker-{container_id}.scope/cgroup.procs"),
                 Path(f"/sys/fs/cgroup/docker/{container_id}/cgroup.procs")):
        if path.is_file():
            return [int(x) for x in path.read_text().split()]
    return []


def _move(pids: Sequence[int], group: Path) -> int:
    moved = 0
    for pid in pids:
        try:
            (group / "cgroup.procs").write_text(str(pid))
            moved += 1
        except OSError:
            pass  # gone meanwhile
    return moved


class CpuGroup:
    """This process (so every tool it starts) and the lab hosts' processes (their sshd, so
    every session and executor) in ONE ``cpu`` cgroup of weight ``shares``.

    Why: Docker puts all containers under one ``docker`` group that weighs as much as a
    single process against everything outside it. On a machine where others run work,
    the lab hosts then get a sliver of the CPU while the control side gets its fair
    share: host-side work (a Python executor, say) looks far slower than it is. In one
    group, control and hosts compete with each other as on an idle machine. Only the
    ``cpu`` controller moves (``cpuacct``, which counts host CPU, is a separate v1
    hierarchy and stays as Docker made it). Undone by ``restore``. Needs root and cgroup v1.
    """

    def __init__(self, name: str, shares: int, hosts: Sequence[Host]) -> None:
        self.group = CPU_ROOT / name
        self.hosts = list(hosts)
        self.group.mkdir(exist_ok=True)
        (self.group / "cpu.shares").write_text(str(shares))
        _move([os.getpid()], self.group)
        self.moved = sum(_move(_container_pids(h.container_id), self.group) for h in self.hosts)

    def describe(self) -> str:
        shares = (self.group / "cpu.shares").read_text().strip()
        return (f"cpu cgroup {self.group} (cpu.shares {shares}): this process and "
                f"{self.moved} lab processes")

    def restore(self) -> None:
        _move([os.getpid()], CPU_ROOT)
        for h in self.hosts:
            home = CPU_ROOT / "docker" / h.container_id
            if home.is_dir():
                _move(_container_pids(h.container_id), home)
        _move([int(x) for x in (self.group / "cgroup.procs").read_text().split()], CPU_ROOT)
        with contextlib.suppress(OSError):
            self.group.rmdir()


# --- measuring --------------------------------------------------------------------------


@dataclass
class Sample:
    tool: str
    n: int
    wall: float
    cpu: float
    host_cpu: float | None
    load: float
    ok: bool
    note: str = ""


class ToolFailed(Exception):
    pass


class Uploaded(Exception):
    """hostplane uploaded its executor during a timed run: the sources changed meanwhile."""


def tool_env(workroot: Path) -> dict[str, str]:
    """The environment every measured process gets: bytecode cached (outside the repo).

    With PYTHONDONTWRITEBYTECODE set (as in some dev shells) and an editable install,
    every run would compile hostplane's modules from source again; a pip-installed
    hostplane, ansible or pyinfra has its bytecode. PYTHONPYCACHEPREFIX keeps the cache
    out of the source trees; the untimed warm-up fills it.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(workroot / "pycache")
    return env


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _log(setup: Setup, tool: str, tag: str) -> Path:
    return setup.workdir / "logs" / f"{tool}-{tag}.log"


def run_subprocess(cmds: Sequence[Sequence[str]], log: Path, env: dict[str, str] | None = None,
                   after: Callable[[], None] | None = None) -> tuple[float, float, list[int]]:
    """Start every command at once, wait for all; (wall, children CPU, exit codes).

    ``after`` runs before the CPU is read (not timed): it may stop helpers the commands
    left behind so that their CPU is counted too.
    """
    cpu0 = _children_cpu()
    procs: list[subprocess.Popen[bytes]] = []
    with log.open("wb") as out:
        try:
            t0 = time.perf_counter()
            procs = [subprocess.Popen(list(c), stdin=subprocess.DEVNULL, stdout=out,
                                      stderr=subprocess.STDOUT, env=env,
                                      start_new_session=True) for c in cmds]
            codes = [p.wait() for p in procs]
            wall = time.perf_counter() - t0
        finally:
            for p in procs:  # interrupted: take the tool's whole process group down
                if p.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(p.pid, signal.SIGTERM)
    if after is not None:
        after()
    return wall, _children_cpu() - cpu0, codes


def _set_subreaper() -> bool:
    """Become the reaper of orphaned descendants (ssh ControlPersist masters), Linux only."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(36, 1, 0, 0, 0)) == 0  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def _reap_orphans(timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.02)


def _reap_ssh_masters(control_dir: Path) -> None:
    """Stop ansible's ControlPersist masters and wait for them, so their CPU is counted."""
    for sock in sorted(control_dir.glob("*")):
        subprocess.run(["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "x"],
                       stdin=subprocess.DEVNULL, capture_output=True, check=False)
    _reap_orphans()
    shutil.rmtree(control_dir, ignore_errors=True)


def measure(tool: str, setup: Setup, tag: str) -> tuple[float, float, str]:
    """(wall, control-side CPU, note) of one run of ``tool``; raises ToolFailed."""
    n = setup.n
    log = _log(setup, tool, tag)
    if tool in IN_PROCESS:
        proc = subprocess.run(worker_cmd(tool, setup), capture_output=True, text=True,
                              check=False, env=setup_env(setup))
        log.write_text(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            raise ToolFailed(f"{tool}: worker exit {proc.returncode}: {proc.stderr[-2000:]}")
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        if result.get("uploaded"):
            raise Uploaded(f"{tool}: {result['uploaded']} hosts got the executor uploaded")
        return float(result["wall"]), float(result["cpu"]), ""
    env = setup_env(setup)
    after: Callable[[], None] | None = None
    if tool in HOSTPLANE_CLI:
        cmds = [hostplane_cmd(tool, setup)]
    elif tool == "openssh":
        cmds = [["ssh", "-F", str(setup.lab.ssh_config), "-o", "BatchMode=yes",
                 "-o", "ControlMaster=no", "-o", "ControlPath=none", h.name,
                 f"sh -c {shlex.quote(SHELL_LINE)}"] for h in setup.hosts]
    elif tool in ANSIBLE_TOOLS:
        env.update(ANSIBLE_CONFIG=str(setup.ansible_cfg), ANSIBLE_NOCOLOR="1")
        if tool == "ansible":
            cmds = [[str(BIN / "ansible-playbook"), "-i", str(setup.inventory),
                     str(setup.playbook)]]
        else:
            cmds = [[str(BIN / "ansible"), "-i", str(setup.inventory), "all", "-m",
                     "command", "-a", ONE_SHELL_LINE]]
        if tag == "warmup":  # one host is enough to fill the bytecode cache
            cmds[0] += ["--limit", setup.hosts[0].name]
        control_dir = setup.control_dir
        shutil.rmtree(control_dir, ignore_errors=True)
        control_dir.mkdir()

        def after() -> None:
            _reap_ssh_masters(control_dir)
    elif tool == "pyinfra":
        cmds = [[str(BIN / "pyinfra"), "-y", "--parallel", str(n),
                 str(setup.pyinfra_inventory), str(setup.pyinfra_deploy)]]
    elif tool == "pyinfra-1":
        cmds = [[str(BIN / "pyinfra"), "-y", "--parallel", str(n),
                 str(setup.pyinfra_inventory), "exec", "--", *ONE_COMMAND]]
    else:
        raise SystemExit(f"unknown tool {tool!r}")
    wall, cpu, codes = run_subprocess(cmds, log, env, after)
    bad = [c for c in codes if c != 0]
    if bad:
        raise ToolFailed(f"{tool}: exit {bad[0]} ({len(bad)} of {len(codes)}), see {log}")
    if tool == "openssh":
        lines = log.read_text().splitlines()
        if len(lines) != OUTPUT_LINES * n:
            raise ToolFailed(f"openssh: {len(lines)} output lines, expected {OUTPUT_LINES * n}")
    if tool in HOSTPLANE_CLI:
        _check_hostplane_output(log, n, tool, cold=tag.startswith(("cold", "warmup")))
    return wall, cpu, ""


HOSTPLANE_CLI = ("hostplane", "hostplane-norecord", "paramiko", "exec", "exec-norecord")
HOSTPLANE_EXTRA: list[str] = []  # --hostplane-args: added to every hostplane CLI run


def setup_env(setup: Setup) -> dict[str, str]:
    return {**tool_env(setup.workdir.parent), **setup.extra_env}


def hostplane_cmd(tool: str, setup: Setup) -> list[str]:
    args = setup.hostplane_args or ["-i", str(setup.inventory)]
    if tool in ("exec", "exec-norecord"):
        cmd = [str(BIN / "hostplane"), "exec", *args, "all", "-f", str(setup.n), "--json"]
    else:
        cmd = [str(BIN / "hostplane"), "run", *args, "all", TEMPLATE,
               "--templates", str(TEMPLATES), "-f", str(setup.n), "--json"]
    if tool in ("hostplane-norecord", "exec-norecord"):
        cmd += ["--no-record"]
    if tool == "paramiko":
        cmd += ["--transport", "paramiko"]
    cmd += HOSTPLANE_EXTRA
    if tool in ("exec", "exec-norecord"):
        cmd += ["--", *ONE_COMMAND]
    return cmd


def worker_cmd(tool: str, setup: Setup) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--worker", tool,
            "--workdir", str(setup.workdir)]


def _check_hostplane_output(log: Path, n: int, tool: str, cold: bool) -> None:
    steps = 1 if tool in ONE_TOOLS else len(COMMANDS)
    ends = [json.loads(line) for line in log.read_text().splitlines()
            if line.startswith("{") and '"host_end"' in line]
    ok = [e for e in ends if e.get("status") == "ok" and e["counts"]["failed"] == 0
          and e["counts"]["ok"] + e["counts"]["changed"] == steps]
    if len(ok) != n:
        raise ToolFailed(f"{tool}: {len(ok)} of {n} hosts ran all {steps} steps, see {log}")
    uploaded = sum(1 for e in ends if e.get("uploaded"))
    if uploaded and not cold:
        raise Uploaded(f"{tool}: {uploaded} hosts got the executor uploaded")


def clear_executor_cache(setup: Setup) -> None:
    """Remove the cached executor from every host (for a cold run)."""
    cmds = [["ssh", "-F", str(setup.lab.ssh_config), "-o", "BatchMode=yes", "-o",
             "ControlMaster=no", "-o", "ControlPath=none", h.name,
             'rm -rf "$HOME/.cache/hostplane"'] for h in setup.hosts]
    _, _, codes = run_subprocess(cmds, _log(setup, "clear-cache", "last"), setup_env(setup))
    if any(codes):
        raise ToolFailed("could not clear the executor cache on every host")


class CPUCounter(Protocol):
    def seconds(self) -> float | None: ...


def sample(tool: str, setup: Setup, tag: str, host_cpu: CPUCounter) -> Sample:
    for attempt in range(3):
        load = os.getloadavg()[0]
        h0 = host_cpu.seconds()
        try:
            wall, cpu, note = measure(tool, setup, tag)
            ok = True
        except Uploaded as exc:
            # Someone changed the executor's sources: this run was a cold one. Again.
            print(f"  again: {exc}", file=sys.stderr)
            if attempt < 2:
                continue
            wall, cpu, note, ok = float("nan"), float("nan"), str(exc)[:300], False
        except ToolFailed as exc:
            print(f"  FAILED {exc}", file=sys.stderr)
            wall, cpu, note, ok = float("nan"), float("nan"), str(exc)[:300], False
        break
    h1 = host_cpu.seconds()
    host = None if h0 is None or h1 is None else h1 - h0
    return Sample(tool, setup.n, wall, cpu, host, load, ok, note)


# --- in-process workers -----------------------------------------------------------------


async def _floor(spec: dict[str, Any], shell_line: str) -> list[str]:
    """One raw asyncssh connection per host, all at once: ``sh -c shell_line`` on each."""
    import asyncssh

    key = asyncssh.read_private_key(spec["key"])
    known = asyncssh.read_known_hosts(spec["known_hosts"])
    command = f"sh -c {shlex.quote(shell_line)}"

    async def one(address: str, port: int) -> str:
        async with asyncssh.connect(address, port, username=spec["user"], client_keys=[key],
                                    known_hosts=known, config=None, agent_path=None) as conn:
            result = await conn.run(command, check=True)
            return str(result.stdout)

    return await asyncio.gather(*(one(a, p) for a, p in spec["hosts"]))


def worker(tool: str, workdir: Path) -> None:
    """Run one in-process measurement; print {"wall", "cpu"} as the last line."""
    inventory = workdir / "hosts.ini"
    spec = json.loads((workdir / "floor.json").read_text())
    uploaded = 0
    if tool in ("floor", "floor-1"):
        import asyncssh  # noqa: F401  (imported before timing, like hostplane's imports)

        line, lines = (SHELL_LINE, OUTPUT_LINES) if tool == "floor" else (ONE_SHELL_LINE, 0)
        c0, t0 = time.process_time(), time.perf_counter()
        outputs = asyncio.run(_floor(spec, line))
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        bad = [o for o in outputs if len(o.splitlines()) != lines]
        if bad:
            raise SystemExit(f"{tool}: unexpected output {bad[0]!r}")
    elif tool == "hostplane-api":
        from control_server import api
        from control_server.inventory import Inventory
        from control_server.runner import RunOptions

        n = len(spec["hosts"])
        c0, t0 = time.process_time(), time.perf_counter()
        inv = Inventory.load([str(inventory)])
        config = api.RunConfig(options=RunOptions(forks=n), templates_dirs=(TEMPLATES,))
        result = asyncio.run(api.run(inv, "all", api.TemplateTask(TEMPLATE), {}, config, []))
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        if result.exit_code != 0:
            raise SystemExit(f"hostplane-api: exit code {result.exit_code}: {result.hosts}")
        uploaded = sum(1 for h in result.hosts.values() if h.uploaded)
    else:
        raise SystemExit(f"no in-process worker for {tool!r}")
    print(json.dumps({"wall": wall, "cpu": cpu, "uploaded": uploaded}))


# --- profiling (py-spy) -------------------------------------------------------------------

# Buckets for py-spy's collapsed stacks. A stack goes to the first of ANYWHERE whose
# needle is in any of its frames (the work is explained by who asked for it); otherwise to
# the bucket of its leaf-most frame that matches a LEAF_FIRST needle; otherwise "other".
ANYWHERE: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("imports", ("<frozen importlib._bootstrap>",)),
    ("plan: inventory, render, validate", ("plan_hosts (", "Inventory.load",
                                           "control_server/inventory/")),
    ("SSH handshake: kex, host key, auth, options", (
        "asyncssh/kex", "asyncssh/auth.py", "asyncssh/known_hosts.py", "asyncssh/public_key.py",
        "asyncssh/crypto/ed", "asyncssh/crypto/ec", "asyncssh/crypto/dh", "asyncssh/crypto/pq",
        "asyncssh/config.py", "ConnectionOptions", "_process_kexinit", "_send_kexinit",
        "_process_newkeys", "_validate_host_key", "create_connection",
        "paramiko/kex", "paramiko/auth_handler.py", "paramiko/hostkeys.py",
        "paramiko/ed25519key.py", "paramiko/client.py", "paramiko/config.py")),
    ("job store: SQLAlchemy, SQLite", ("control_server/store/", "sqlalchemy/")),
)
LEAF_FIRST: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("SSH packets: ciphers, channels", ("asyncssh/", "paramiko/", "cryptography/")),
    ("event sinks: JSON Lines, console", ("control_server/jsonl.py",
                                          "control_server/console.py", "rich/")),
    ("executor events: lines, parse, runner", ("control_server/delivery.py",
                                               "control_server/runner.py",
                                               "control_server/events.py",
                                               "control_server/transport/")),
)
OTHER = "event loop, other"


def _bucket(frames: list[str]) -> str:
    for name, needles in ANYWHERE:
        if any(needle in frame for frame in frames for needle in needles):
            return name
    for frame in reversed(frames):
        for name, needles in LEAF_FIRST:
            if any(needle in frame for needle in needles):
                return name
    return OTHER


def bucket_profile(raw: Path) -> list[tuple[str, float]]:
    names = [name for name, _ in (*ANYWHERE, *LEAF_FIRST)] + [OTHER]
    counts = dict.fromkeys(names, 0)
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, num = line.rpartition(" ")
        if not num.isdigit():
            continue
        total += int(num)
        counts[_bucket(stack.split(";"))] += int(num)
    return [(name, count / total if total else 0.0) for name, count in counts.items()]


def profile(setup: Setup, py_spy: str, out: Path) -> str:
    """py-spy (GIL-holding samples only: CPU in Python) of one hostplane CLI run and one
    library-API run, untimed; the raw stacks are kept in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    report = []
    runs = {
        "hostplane": hostplane_cmd("hostplane", setup),
        "hostplane-api": worker_cmd("hostplane-api", setup),
    }
    for tool, cmd in runs.items():
        raw = out / f"{tool}-n{setup.n}.txt"
        proc = subprocess.run([py_spy, "record", "--gil", "-r", "200", "-f", "raw", "-o",
                               str(raw), "--", *cmd], capture_output=True, check=False,
                              env=setup_env(setup))
        if proc.returncode != 0 or not raw.exists():
            report.append(f"{tool}: py-spy failed: {proc.stderr.decode()[-500:]}")
            continue
        samples = sum(int(x.rpartition(" ")[2]) for x in raw.read_text().splitlines() if x)
        report.append(f"\nprofile {tool}, N = {setup.n} ({samples} samples at 200 Hz, "
                      f"GIL held; raw stacks: {raw})\n")
        report.append("| where | share of control CPU |\n| --- | ---: |")
        report += [f"| {name} | {share * 100:.0f}% |" for name, share in bucket_profile(raw)]
    return "\n".join(report)


# --- reporting --------------------------------------------------------------------------


@dataclass
class Row:
    tool: str
    n: int
    wall: float
    cpu: float
    host_cpu: float | None
    walls: list[float] = field(default_factory=list)
    failed: int = 0


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def summarize(samples: Sequence[Sample]) -> list[Row]:
    rows: list[Row] = []
    order = {t: i for i, t in enumerate(ALL_TOOLS)}
    order["hostplane (cold)"] = order["hostplane"]
    keys = sorted(dict.fromkeys((s.tool, s.n) for s in samples),
                  key=lambda k: (k[1], order.get(k[0], 99), k[0]))
    for tool, n in keys:
        mine = [s for s in samples if (s.tool, s.n) == (tool, n)]
        good = [s for s in mine if s.ok]
        hosts = [s.host_cpu for s in good if s.host_cpu is not None]
        rows.append(Row(tool, n, _median([s.wall for s in good]), _median([s.cpu for s in good]),
                        _median(hosts) if hosts else None, [round(s.wall, 3) for s in good],
                        len(mine) - len(good)))
    return rows


def _fmt(x: float | None, digits: int = 2) -> str:
    if x is None or x != x:
        return "-"
    return f"{x:.{digits}f}"


def table(rows: Sequence[Row], n: int) -> str:
    mine = [r for r in rows if r.n == n]
    floor = next((r for r in mine if r.tool == "floor"), None)

    def ratio(x: float | None, base: float | None) -> str:
        if x is None or base is None or x != x or base != base or base == 0:
            return "-"
        return f"{x / base:.1f}x"

    def total(r: Row) -> float | None:
        return None if r.host_cpu is None else r.cpu + r.host_cpu

    lines = [f"N = {n}", "",
             "| tool | wall s | wall / floor | CPU s control | CPU / floor | CPU s hosts "
             "| CPU s total | total / floor | runs (wall s) |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in mine:
        runs = ", ".join(f"{w:.2f}" for w in r.walls) + (f" ({r.failed} failed)" if r.failed
                                                         else "")
        lines.append(
            f"| {r.tool} | {_fmt(r.wall)} | {ratio(r.wall, floor.wall if floor else None)} "
            f"| {_fmt(r.cpu)} | {ratio(r.cpu, floor.cpu if floor else None)} "
            f"| {_fmt(r.host_cpu)} | {_fmt(total(r))} "
            f"| {ratio(total(r), total(floor) if floor else None)} | {runs} |")
    return "\n".join(lines)


def scale_table(rows: Sequence[Row], ns: Sequence[int]) -> str:
    """Per-host cost at each N, and the marginal cost between consecutive N."""
    tools = list(dict.fromkeys(r.tool for r in rows if r.n in ns))
    lines = ["| tool | N | wall s | wall ms/host | marginal wall ms/host | CPU s (control) "
             "| CPU ms/host | marginal CPU ms/host | host CPU ms/host |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for tool in tools:
        prev: Row | None = None
        for n in ns:
            r = next((x for x in rows if x.tool == tool and x.n == n), None)
            if r is None:
                continue
            mw = mc = float("nan")
            if prev is not None:
                mw = (r.wall - prev.wall) / (n - prev.n) * 1000
                mc = (r.cpu - prev.cpu) / (n - prev.n) * 1000
            hc = r.host_cpu / n * 1000 if r.host_cpu is not None else None
            lines.append(f"| {tool} | {n} | {_fmt(r.wall)} | {_fmt(r.wall / n * 1000, 1)} "
                         f"| {_fmt(mw, 1)} | {_fmt(r.cpu)} | {_fmt(r.cpu / n * 1000, 1)} "
                         f"| {_fmt(mc, 1)} | {_fmt(hc, 1)} |")
            prev = r
    return "\n".join(lines)


def targets(rows: Sequence[Row], n: int = 30) -> str:
    def wall(tool: str) -> float:
        r = next((x for x in rows if x.tool == tool and x.n == n), None)
        return r.wall if r else float("nan")

    hp, floor, pyinfra, ansible = wall("hostplane"), wall("floor"), wall("pyinfra"), wall(
        "ansible")
    api = wall("hostplane-api")
    out = [f"Targets at N = {n} (wall time, medians):"]
    for name, value, goal, good in (
        ("hostplane / floor", hp / floor, "<= 2x", hp / floor <= 2),
        ("pyinfra / hostplane", pyinfra / hp, ">= 2.5x", pyinfra / hp >= 2.5),
        ("ansible / hostplane", ansible / hp, ">= 40x", ansible / hp >= 40),
        ("hostplane-api / floor", api / floor, "<= 2x", api / floor <= 2),
        ("pyinfra / hostplane-api", pyinfra / api, ">= 2.5x", pyinfra / api >= 2.5),
        ("ansible / hostplane-api", ansible / api, ">= 40x", ansible / api >= 40),
    ):
        verdict = "n/a" if value != value else ("met" if good else "MISSED")
        out.append(f"- {name}: {_fmt(value, 2)}x (target {goal}): {verdict}")
    return "\n".join(out)


def _row(rows: Sequence[Row], tool: str, n: int) -> Row | None:
    return next((r for r in rows if r.tool == tool and r.n == n), None)


def _ratio(x: float | None, base: float | None) -> str:
    if x is None or base is None or x != x or base != base or base == 0:
        return "-"
    return f"{x / base:.2f}x"


def loopback_table(rows: Sequence[Row], ns: Sequence[int]) -> str:
    """One table: per N and workload, every tool's wall, control and host CPU per host,
    and ratios to the floor and to pyinfra of the same workload in the same run."""
    lines = ["| N | workload | tool | wall s | vs floor | vs pyinfra | control CPU ms/host "
             "| vs floor | host CPU ms/host | vs floor | runs (wall s) |",
             "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for n in ns:
        for load in ("1 command", "10 steps"):
            mine = [r for r in rows if r.n == n and workload(r.tool) == load]
            if not mine:
                continue
            floor = _row(rows, floor_of(mine[0].tool), n)
            pyinfra = _row(rows, pyinfra_of(mine[0].tool), n)
            for r in mine:
                hc = None if r.host_cpu is None else r.host_cpu / n * 1000
                fhc = None if floor is None or floor.host_cpu is None else \
                    floor.host_cpu / n * 1000
                runs = ", ".join(f"{w:.2f}" for w in r.walls) + (
                    f" ({r.failed} failed)" if r.failed else "")
                lines.append(
                    f"| {n} | {load} | {LABELS.get(r.tool, r.tool)} | {_fmt(r.wall)} "
                    f"| {_ratio(r.wall, floor.wall if floor else None)} "
                    f"| {_ratio(r.wall, pyinfra.wall if pyinfra else None)} "
                    f"| {_fmt(r.cpu / n * 1000, 1)} "
                    f"| {_ratio(r.cpu, floor.cpu if floor else None)} "
                    f"| {_fmt(hc, 1)} | {_ratio(hc, fhc)} | {runs} |")
    return "\n".join(lines)


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "NOT MET")


def loopback_targets(rows: Sequence[Row], ns: Sequence[int],
                     startup: dict[str, float] | None = None) -> str:
    """Issue 9's targets that one loopback run measures, each marked met or not."""
    out = ["| target | N | measured | met? |", "| --- | ---: | --- | --- |"]

    def add(name: str, n: int | str, text: str, ok: bool | None) -> None:
        out.append(f"| {name} | {n} | {text} | {_verdict(ok)} |")

    def w(tool: str, n: int) -> float | None:
        r = _row(rows, tool, n)
        return None if r is None or r.wall != r.wall else r.wall

    def cpu(tool: str, n: int) -> float | None:
        r = _row(rows, tool, n)
        return None if r is None or r.cpu != r.cpu else r.cpu

    def host(tool: str, n: int) -> float | None:
        r = _row(rows, tool, n)
        return None if r is None else r.host_cpu

    for n in ns:
        ex, f1, p1 = w("exec", n), w("floor-1", n), w("pyinfra-1", n)
        if ex and p1:
            add("`exec` faster than pyinfra", n, f"{ex:.2f} s vs {p1:.2f} s "
                f"({p1 / ex:.2f}x)", ex < p1)
        if ex and f1:
            add("`exec` within 1.8x of the floor", n, f"{ex / f1:.2f}x", ex / f1 <= 1.8)
        run, f10, p10 = w("hostplane", n), w("floor", n), w("pyinfra", n)
        if run and p10:
            add("`run` 10 steps >= 2x faster than pyinfra", n, f"pyinfra {p10 / run:.2f}x "
                "`run`", p10 / run >= 2)
        if run and f10:
            add("`run` within 2x of the floor", n, f"{run / f10:.2f}x", run / f10 <= 2)
        for tool, base in (("exec", "floor-1"), ("hostplane", "floor"),
                           ("hostplane-api", "floor")):
            c, fc = cpu(tool, n), cpu(base, n)
            if c is not None and fc:
                add(f"control CPU/host of {LABELS[tool]} <= 2x the floor's", n,
                    f"{c / n * 1000:.1f} vs {fc / n * 1000:.1f} ms ({c / fc:.2f}x)",
                    c / fc <= 2)
        rec, norec = w("exec", n), w("exec-norecord", n)
        if rec and norec:
            add("recording <= 10% of wall over `--no-record` (exec)", n,
                f"{(rec / norec - 1) * 100:+.0f}%", rec / norec - 1 <= 0.10)
        he, hf1, hr, hf10 = host("exec", n), host("floor-1", n), host("hostplane", n), \
            host("floor", n)
        if he is not None and hf1 is not None:
            one = (he - hf1) / n * 1000
            add("host CPU of a one-step sequence <= 25 ms (exec's host CPU over the "
                "floor's, per host)", n, f"{one:.1f} ms", one <= 25)
        if None not in (he, hf1, hr, hf10):
            assert he is not None and hf1 is not None and hr is not None and hf10 is not None
            raw = (hr - he) / 9 / n * 1000
            over = ((hr - he) - (hf10 - hf1)) / 9 / n * 1000
            add("host CPU per further command step <= 2 ms (run over exec, less the floor's "
                "same 9 commands, per step per host)", n,
                f"{over:.1f} ms ({raw:.1f} ms with the commands' own)", over <= 2)
    growth(add, ns, cpu)
    for name, value in (startup or {}).items():
        add(f"{name} under 120 ms (wall, median of 5)", "-", f"{value * 1000:.0f} ms",
            value < 0.120)
    return "\n".join(out)


def growth(add: Callable[[str, Any, str, bool], None], ns: Sequence[int],
           cpu: Callable[[str, int], float | None]) -> None:
    """The 1,000-host target: exec's control CPU per host must not grow with the fleet
    (each N has its own ssh_config and known_hosts of N entries). Per host including the
    fixed start-up falls with N; the marginal cost between sizes is the one to stay flat."""
    sized = [(n, c) for n in sorted(ns) if (c := cpu("exec", n)) is not None]
    if len(sized) < 2:
        return
    (n0, c0), (n1, c1) = sized[0], sized[-1]
    add(f"control CPU/host of exec at {n1} no more than 1.2x at {n0} (start-up included)",
        f"{n0}-{n1}", f"{c0 / n0 * 1000:.1f} -> {c1 / n1 * 1000:.1f} ms",
        c1 / n1 <= 1.2 * c0 / n0)
    slopes = [((b - a) / (m - n) * 1000, f"{n}-{m}")
              for (n, a), (m, b) in itertools.pairwise(sized)]
    if len(slopes) >= 2:
        low, high = min(s for s, _ in slopes), max(s for s, _ in slopes)
        text = ", ".join(f"{label}: {value:.1f}" for value, label in slopes)
        add("marginal control CPU/host of exec flat within 20% (ms a host between sizes)",
            f"{n0}-{n1}", text, high <= 1.2 * low)


def startup_times(setup: Setup, runs: int = 5) -> dict[str, float]:
    """Median wall of ``hostplane --version`` and of ``exec`` on an empty match."""
    env = setup_env(setup)
    cases = {
        "`hostplane --version`": [str(BIN / "hostplane"), "--version"],
        "`hostplane exec` on a pattern that matches no host": [
            str(BIN / "hostplane"), "exec", *setup.hostplane_args, "none-such*",
            "--no-record", "--", "true"],
    }
    out = {}
    for name, cmd in cases.items():
        subprocess.run(cmd, capture_output=True, env=env, check=False)  # warm
        walls = []
        for _ in range(runs):
            t0 = time.perf_counter()
            subprocess.run(cmd, capture_output=True, env=env, check=False)
            walls.append(time.perf_counter() - t0)
        out[name] = statistics.median(walls)
    return out


def machine() -> dict[str, Any]:
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError):
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kib / 1024 / 1024:.0f} GiB"

    def version(cmd: list[str]) -> str:
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, check=False)
        except OSError:
            return "?"
        return (p.stdout or p.stderr).strip().splitlines()[0] if (p.stdout or p.stderr) else "?"

    import asyncssh
    import paramiko

    commit = version(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--",
                            "control_server", "host_executor"], capture_output=True, text=True,
                           check=False).stdout.strip()
    return {
        "commit": commit + (" + uncommitted changes in control_server/host_executor"
                            if dirty else ""),
        "cpus": os.cpu_count(), "cpu": cpu, "memory": mem, "kernel": platform.release(),
        "python": platform.python_version(), "asyncssh": asyncssh.__version__,
        "paramiko": paramiko.__version__, "openssh": version(["ssh", "-V"]),
        "ansible": version([str(BIN / "ansible-playbook"), "--version"]),
        "pyinfra": version([str(BIN / "pyinfra"), "--version"]),
        "load_at_start": os.getloadavg(),
    }


# --- main -------------------------------------------------------------------------------


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _tools(text: str) -> list[str]:
    tools = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [t for t in tools if t not in ALL_TOOLS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown tools {unknown}; known: {ALL_TOOLS}")
    return tools


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--loopback", action="store_true",
                   help="no Docker: start sshd servers on 127.x addresses (see loopback.py) "
                        "and compare 1 command and 10 steps (default tools: "
                        f"{','.join(LOOPBACK_TOOLS)})")
    p.add_argument("-n", "--hosts", type=_ints, default=None,
                   help="N for the full comparison (default 10,30; --loopback: 30,100,200)")
    p.add_argument("--scale", type=_ints, default=[],
                   help="N for the scale runs with --scale-tools (e.g. 100,200)")
    p.add_argument("--tools", type=_tools, default=None,
                   help=f"default: {','.join(TEN_TOOLS)} (lab), "
                        f"{','.join(LOOPBACK_TOOLS)} (--loopback)")
    p.add_argument("--scale-tools", type=_tools, default=list(SCALE_TOOLS))
    p.add_argument("--repeat", "--rounds", dest="repeat", type=int, default=3,
                   help="interleaved rounds per N; the median is reported (default 3)")
    p.add_argument("--cold", action="store_true",
                   help="also time hostplane with the executor removed from every host first")
    p.add_argument("--ansible-max", type=int, default=30,
                   help="skip ansible for N above this (default 30)")
    p.add_argument("--hostplane-args", default="",
                   help="extra arguments for every hostplane CLI run (one shell-quoted string)")
    p.add_argument("--no-startup", action="store_true",
                   help="--loopback: do not time `hostplane --version` and an empty exec")
    p.add_argument("--lab", default="hostplane-bench", help="lab name (Docker containers)")
    p.add_argument("--lab-folder", type=Path, default=None)
    p.add_argument("--keep-lab", action="store_true", help="leave the lab up at the end")
    p.add_argument("--lab-size", type=int, default=0,
                   help="hosts in the lab (default: the largest N); a lab of another size "
                        "is made again, so keep this equal between runs that reuse a lab")
    p.add_argument("--cpu-shares", type=int, default=0,
                   help="put this process and the lab hosts in one cpu cgroup of this weight "
                        "(1024 = one ordinary process); see CpuGroup. Default: off")
    p.add_argument("--workdir", type=Path, default=None, help="generated files and logs")
    p.add_argument("--json", type=Path, default=None, help="write every sample here")
    p.add_argument("--profile", type=Path, default=None, metavar="DIR",
                   help="also profile one hostplane CLI run and one API run per --hosts N "
                        "with py-spy (untimed), raw stacks into DIR")
    p.add_argument("--py-spy", default=shutil.which("py-spy") or "py-spy",
                   help="the py-spy binary (pip install py-spy)")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.hosts is None:
        args.hosts = [30, 100, 200] if args.loopback else [10, 30]
    if args.tools is None:
        args.tools = list(LOOPBACK_TOOLS if args.loopback else TEN_TOOLS)
    HOSTPLANE_EXTRA[:] = shlex.split(args.hostplane_args)
    return args


def _print_sample(s: Sample) -> None:
    hc = f"{s.host_cpu:6.2f}" if s.host_cpu is not None else "   -"
    print(f"  {s.tool:18} {s.wall:7.2f} s wall {s.cpu:6.2f} s CPU {hc} s host "
          f"CPU  load {s.load:4.1f}", flush=True)


def run_n(setup: Setup, tools: Sequence[str], args: argparse.Namespace,
          host_cpu: CPUCounter, samples: list[Sample], warmed: set[str]) -> None:
    """One N: cold runs (--cold), one untimed warm-up per tool, then ``args.repeat``
    interleaved rounds of every tool."""
    print(f"\n== N = {setup.n}: {', '.join(tools)}", flush=True)
    if args.cold and any(t in tools for t in ("hostplane", "hostplane-api")):
        sample("hostplane", setup, "warmup", host_cpu)  # the control's bytecode
        for r in range(args.repeat):
            clear_executor_cache(setup)
            s = sample("hostplane", setup, f"cold{r}", host_cpu)
            s.tool = "hostplane (cold)"
            samples.append(s)
            print(f"  {s.tool:18} {s.wall:7.2f} s wall {s.cpu:6.2f} s CPU", flush=True)
    # The steady state: the executor cached on every host; each tool warmed once.
    for tool in tools:
        # hostplane: the executor cached on every host. Others keep nothing on
        # the hosts between runs: one warm-up fills the bytecode cache.
        if tool in (*HOSTPLANE_CLI, "hostplane-api") or tool not in warmed:
            sample(tool, setup, "warmup", host_cpu)
            warmed.add(tool)
    for r in range(args.repeat):
        for tool in tools:
            s = sample(tool, setup, str(r), host_cpu)
            samples.append(s)
            _print_sample(s)
    if setup.control_dir.exists():
        _reap_ssh_masters(setup.control_dir)


def _tools_for(args: argparse.Namespace, n: int) -> list[str]:
    tools = [t for t in (args.tools if n in args.hosts else args.scale_tools)
             if not (t in ANSIBLE_TOOLS and n > args.ansible_max)]
    if n in args.hosts and n in args.scale:
        tools += [t for t in args.scale_tools if t not in tools]
    return tools


def loopback_main(args: argparse.Namespace) -> int:
    """The benchmark without Docker: a LoopbackFleet of max(N) hosts on this machine."""
    sys.path.insert(0, str(HERE))
    from loopback import LoopbackFleet, have_sshd

    if not have_sshd():
        raise SystemExit("--loopback needs /usr/sbin/sshd and ssh-keygen (openssh-server)")
    ns = sorted(set(args.hosts) | set(args.scale))
    info = machine()
    print(json.dumps(info, indent=1), flush=True)
    workroot = args.workdir or Path(tempfile.mkdtemp(prefix="hostplane-loopback-"))
    workroot.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    _set_subreaper()  # ansible's ControlPersist masters: reaped here, their CPU counted
    fleet = LoopbackFleet(workroot / "fleet", max(ns))
    samples: list[Sample] = []
    warmed: set[str] = set()
    startup: dict[str, float] = {}
    t_start = time.monotonic()
    try:
        fleet.start()
        print(f"fleet: {fleet.describe()}\nhost CPU: {fleet.cpu.describe()}\n"
              f"work in {workroot}", flush=True)
        env = fleet.control_env()
        for n in ns:
            known_hosts, ssh_config = fleet.client_files(n, workroot / f"n{n}")
            lab = LabInfo(fleet.root, fleet.client_key, known_hosts, ssh_config,
                          [Host(h.name, h.address, "", h.port) for h in fleet.hosts[:n]],
                          user=fleet.user)
            setup = write_setup(lab, n, workroot, aliases=True, extra_env=env)
            if not startup and not args.no_startup:
                startup = startup_times(setup)
            run_n(setup, _tools_for(args, n), args, fleet.cpu, samples, warmed)
            if args.profile and n in args.hosts:
                print(profile(setup, args.py_spy, args.profile), flush=True)
    finally:
        fleet.stop()
    rows = summarize(samples)
    print(f"\nloopback run: {time.monotonic() - t_start:.0f} s; {fleet.describe()}; "
          f"host CPU: {fleet.cpu.describe()}; load average at end: {os.getloadavg()}\n")
    print(loopback_table(rows, ns) + "\n")
    print(loopback_targets(rows, ns, startup) + "\n")
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "fleet": fleet.describe(),
                                         "host_cpu": fleet.cpu.describe(),
                                         "startup": startup,
                                         "samples": [asdict(s) for s in samples],
                                         "rows": [asdict(r) for r in rows]}, indent=1))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        worker(args.worker, args.workdir)
        return 0
    sys.path.insert(0, str(ROOT))
    check_template()
    if args.loopback:
        return loopback_main(args)
    from control_server.lab import default_folder, lab_down, lab_up

    ns = sorted(set(args.hosts) | set(args.scale))
    info = machine()
    print(json.dumps(info, indent=1), flush=True)
    folder = args.lab_folder or default_folder(args.lab)
    workroot = args.workdir or Path(tempfile.mkdtemp(prefix="hostplane-bench-"))
    t0 = time.monotonic()
    size = max(args.lab_size or 0, max(ns))
    lab = lab_info(lab_up(size, name=args.lab, folder=folder))
    print(f"lab {args.lab}: {len(lab.hosts)} hosts up in {time.monotonic() - t0:.0f} s "
          f"(files in {folder}; work in {workroot})", flush=True)
    reaper = _set_subreaper()
    group = CpuGroup(f"{args.lab}-bench", args.cpu_shares, lab.hosts) if args.cpu_shares \
        else None
    priority = group.describe() if group else "as the system has it"
    print(f"CPU scheduling: {priority}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    samples: list[Sample] = []
    profiles: list[str] = []
    warmed: set[str] = set()
    try:
        for n in ns:
            setup = write_setup(lab, n, workroot)
            run_n(setup, _tools_for(args, n), args, HostCPU(setup.hosts), samples, warmed)
            if args.profile and n in args.hosts:
                profiles.append(profile(setup, args.py_spy, args.profile))
                print(profiles[-1], flush=True)
    finally:
        for n in ns:  # ansible's masters, if interrupted mid-run
            if (workroot / f"n{n}" / "cp").exists():
                _reap_ssh_masters(workroot / f"n{n}" / "cp")
        if group is not None:
            group.restore()
        if not args.keep_lab:
            lab_down(args.lab, folder)
    rows = summarize(samples)
    print()
    for n in ns:
        print(table(rows, n) + "\n")
    if args.scale:
        print(scale_table(rows, ns) + "\n")
    if 30 in args.hosts:
        print(targets(rows) + "\n")
    for text in profiles:
        print(text + "\n")
    print(f"subreaper for ssh masters: {reaper}; CPU scheduling: {priority}; "
          f"load average at end: {os.getloadavg()}")
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "samples": [asdict(s) for s in samples],
                                         "rows": [asdict(r) for r in rows]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
