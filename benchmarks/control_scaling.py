"""Control-side CPU per host as the fleet grows (issue 9): one real sshd on loopback (the
fault suite's harness), an ssh_config with one ``Host`` block per host and a known_hosts
with one line per host (both grow with N, as an operator's do), then
``hostplane exec --no-record --json -f F -- true``; reports wall and the control process's
CPU (user+sys of the CLI, not sshd's nor the executors').

    .venv/bin/python benchmarks/control_scaling.py 30 250 1000 [--record] [--profile DIR]

Needs root (sshd) like the fault suite. ``--profile DIR`` runs the largest N once more
under py-spy (raw and speedscope files in DIR).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "faults"))

from sshd_harness import LoopbackSSHD  # noqa: E402


def grow_files(sshd: LoopbackSSHD) -> None:
    """One known_hosts line per host on top of the real ones (names ssh never asks for,
    so lookups must skip them), as a fleet's known_hosts has."""
    lines = [f"node{i + 1:02d}.example.net,10.{i // 250}.{i % 250}.1 {sshd.host_pub}\n"
             for i in range(sshd.count)]
    with sshd.known_hosts.open("a") as out:
        out.writelines(lines)


def run(sshd: LoopbackSSHD, forks: int, record: bool, spy: Path | None = None) -> dict[str, float]:
    cmd = [str(ROOT / ".venv/bin/hostplane"), "exec", *sshd.cli_args(), "--json", "-f",
           str(forks), "--handshakes", "64", "nodes", "--", "true"]
    if not record:
        cmd.insert(2, "--no-record")
    if spy is not None:
        cmd = [str(ROOT / ".venv/bin/py-spy"), "record", "-r", "200", "-f", "raw", "-o",
               str(spy), "--", *cmd]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(cmd, env=sshd.env(), capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    ends = [json.loads(line) for line in done.stdout.splitlines() if '"host_end"' in line]
    ok = sum(1 for e in ends if e.get("status") == "ok")
    if done.returncode != 0 and spy is None:
        print(done.stderr[-2000:], file=sys.stderr)
    return {"wall": wall, "cpu": cpu, "ok": ok, "rc": done.returncode}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("sizes", nargs="+", type=int)
    parser.add_argument("--forks", type=int, default=200)
    parser.add_argument("--record", action="store_true")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--profile", type=Path)
    args = parser.parse_args()
    for n in args.sizes:
        with tempfile.TemporaryDirectory(prefix="hp-scale-") as tmp:
            sshd = LoopbackSSHD(Path(tmp), count=n, net=91,
                                extra_config=["MaxStartups 1000:30:1000", "MaxSessions 10"])
            sshd.write_client_files()
            grow_files(sshd)
            sshd.start()
            try:
                for _ in range(args.rounds):
                    r = run(sshd, args.forks, args.record)
                    print(f"N={n:5d} wall {r['wall']:6.2f} s  control CPU {r['cpu']:6.2f} s "
                          f"= {1000 * r['cpu'] / n:5.1f} ms/host  ok {r['ok']}/{n} "
                          f"rc {r['rc']}", flush=True)
                if args.profile is not None and n == max(args.sizes):
                    args.profile.mkdir(parents=True, exist_ok=True)
                    run(sshd, args.forks, args.record, args.profile / f"exec-{n}.txt")
            finally:
                sshd.stop()


if __name__ == "__main__":
    os.umask(0o022)
    main()
