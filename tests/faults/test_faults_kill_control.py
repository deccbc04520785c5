"""Exactly once under repeated SIGKILLs of the control server (issue 8 §4/§8), over a real sshd.

Each round starts ``hostplane run`` on 20 hosts with a five-step template whose every step
appends one line to a per-host marker file, SIGKILLs it at a random point, then runs
``hostplane jobs resume`` (itself SIGKILLed in some rounds) until the job succeeds. Every
host's marker must then hold each step's line exactly once, in order (no step run twice, none
lost), and the job must record every host ok. The figures are printed (run with ``-s``).
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from sshd_harness import LoopbackSSHD

HOSTPLANE = ".venv/bin/hostplane"
STEPS = 5
HOSTS = 20
ROUNDS = 4
SEED = 20240808
MAX_RESUMES = 6

SLEEPS = ("0.3", "0.2", "0.4", "0.25", "0.35")  # per step, so kills land mid-step
TEMPLATE = "".join([
    "{#\n",
    "description: five steps, each appending its line to a per-host marker file\n",
    "params:\n",
    "  dir: {required: true}\n",
    "#}\n",
    "steps:\n",
    *(f"  - name: step {k}\n"
      f"    shell: {{cmd: \"echo STEP {k} >> {{{{ dir }}}}/{{{{ inventory_hostname }}}}; "
      f"sleep {sleep}\"}}\n"
      for k, sleep in enumerate(SLEEPS, start=1)),
])


def _hostplane(server: LoopbackSSHD, *args: str, timeout: float = 120
               ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HOSTPLANE, *args], capture_output=True, text=True,
                          env=server.env(), timeout=timeout)


def _start(server: LoopbackSSHD, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([HOSTPLANE, *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=server.env())


def _lines(folder: Path) -> int:
    return sum(len(p.read_text().splitlines()) for p in folder.iterdir())


def _kill_at(proc: subprocess.Popen[str], rng: random.Random, folder: Path, early: bool
             ) -> tuple[str | None, str]:
    """SIGKILL ``proc`` at a random point: ``early`` anywhere in its first 2 s (connecting,
    uploading, starting), else once a step has appended a marker line, 0-1.5 s later (mid-step,
    between steps, or as the last ones end). The point it was killed at, or None when it
    ended first; and its stderr."""
    if early:
        after = rng.uniform(0.3, 2.0)
        what = f"at {after:.2f}s"
    else:
        after = rng.uniform(0.0, 1.5)
        what = f"{after:.2f}s after the first new marker line"
        baseline, began = _lines(folder), time.monotonic()
        while _lines(folder) == baseline and proc.poll() is None \
                and time.monotonic() - began < 60:
            time.sleep(0.02)
    try:
        proc.wait(timeout=after)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        return what, proc.communicate(timeout=30)[1]
    return None, proc.communicate(timeout=30)[1]


def _jobs(server: LoopbackSSHD) -> dict[int, dict[str, Any]]:
    out = _hostplane(server, "jobs", "list", "--json", "-n", "1000")
    assert out.returncode == 0, out.stderr
    return {job["id"]: job for job in map(json.loads, out.stdout.splitlines())}


def _show(server: LoopbackSSHD, job_id: int) -> dict[str, Any]:
    out = _hostplane(server, "jobs", "show", "--json", str(job_id))
    assert out.returncode == 0, out.stderr
    job: dict[str, Any] = json.loads(out.stdout)
    return job


def _step_ends(server: LoopbackSSHD, job_id: int) -> dict[str, list[int]]:
    """The step indexes of each host's ``step_end`` events in the store (not failed)."""
    out = _hostplane(server, "jobs", "events", "--json", str(job_id))
    assert out.returncode == 0, out.stderr
    ends: dict[str, list[int]] = {}
    for line in out.stdout.splitlines():
        record = json.loads(line)
        event = record.get("event") or {}
        if record.get("kind") == "executor" and event.get("event") == "step_end" \
                and event.get("status") != "failed":
            ends.setdefault(record["host"], []).append(int(event["index"]))
    return ends


def _markers(folder: Path, hosts: list[str]) -> dict[str, list[str]]:
    return {h: (folder / h).read_text().splitlines() if (folder / h).exists() else []
            for h in hosts}


def _note_kill(figures: dict[str, Any], log: list[str], what: str,
               markers: dict[str, list[str]]) -> None:
    """How far the hosts had got when the kill landed."""
    mid = sum(1 for lines in markers.values() if 0 < len(lines) < STEPS)
    figures["hosts_mid_sequence_at_kill"] += mid
    done = sum(1 for lines in markers.values() if len(lines) >= STEPS)
    log.append(f"  kill {what}: {mid} hosts mid-sequence, {done} done")


def test_sigkilled_control_server_runs_every_step_exactly_once(
        sshd_factory: Any, tmp_path: Path) -> None:
    server: LoopbackSSHD = sshd_factory(count=HOSTS)
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "five_markers.yaml.j2").write_text(TEMPLATE)
    rng = random.Random(SEED)
    want = [f"STEP {k}" for k in range(1, STEPS + 1)]
    figures = {"rounds": 0, "hosts": 0, "kills": 0, "resumes": 0, "results_lost": 0,
               "steps_run_twice": 0, "steps_lost": 0, "hosts_mid_sequence_at_kill": 0,
               "results_recorded_twice": 0}
    log: list[str] = []
    started = time.monotonic()

    try:
        for round_no in range(ROUNDS):
            folder = server.home / f"markers-{round_no}"
            folder.mkdir()
            run_args = ["run", *server.cli_args(), "all", "five_markers", "--templates",
                        str(templates), "-e", f"dir={folder}"]
            # Start the run and SIGKILL it mid-sequence; a kill before the job was recorded
            # started nothing that was recorded: start again.
            job_id = None
            for _attempt in range(5):
                before = set(_jobs(server))
                run = _start(server, *run_args)
                killed, _ = _kill_at(run, rng, folder, early=rng.random() < 0.3)
                if killed:
                    figures["kills"] += 1
                    _note_kill(figures, log, f"run {killed}", _markers(folder, server.hosts))
                new = sorted(set(_jobs(server)) - before)
                if new:
                    job_id = new[0]
                    break
            assert job_id is not None, "no job recorded after 5 starts"

            state = _jobs(server)[job_id]["state"]
            resumes = 0
            while state != "succeeded":
                assert state == "interrupted", f"round {round_no}: job {job_id} is {state}: " \
                    f"{_show(server, job_id).get('error')}"
                assert resumes < MAX_RESUMES, f"round {round_no}: job {job_id} still {state} " \
                    f"after {resumes} resumes: {_show(server, job_id).get('error')}"
                resumes += 1
                resume = _start(server, "jobs", "resume", "--journal-wait", "5", str(job_id))
                # Kill the resume as well in every other round (twice in the last one).
                killed: str | None = None
                if round_no % 2 == 1 and resumes <= (2 if round_no == ROUNDS - 1 else 1):
                    killed, err = _kill_at(resume, rng, folder, early=False)
                    if killed:
                        figures["kills"] += 1
                        _note_kill(figures, log, f"resume {killed}", _markers(folder, server.hosts))
                else:
                    err = resume.communicate(timeout=90)[1]
                state = _jobs(server)[job_id]["state"]
                if not killed:
                    log.append(f"  resume: exit {resume.returncode}, job {state}")
                    assert resume.returncode in (0, 4) and (state != "succeeded"
                                                            or resume.returncode == 0), err
                if state == "interrupted":
                    time.sleep(0.5)  # a detached executor still running: give it time
            figures["resumes"] += resumes
            log.append(f"round {round_no}: job {job_id}, {resumes} resume(s)")

            job = _show(server, job_id)
            hosts = {h["host"]: h for h in job["hosts"]}
            assert sorted(hosts) == server.hosts
            not_ok = {h: (r["state"], (r["result"] or {}).get("error"))
                      for h, r in hosts.items() if r["state"] != "ok"}
            markers = _markers(folder, server.hosts)
            for lines in markers.values():
                figures["steps_run_twice"] += sum(max(0, lines.count(s) - 1) for s in want)
                figures["steps_lost"] += sum(1 for s in want if s not in lines)
            # Every step's result reached the store once: one step_end per host and step.
            ends = _step_ends(server, job_id)
            lost = {h: sorted(set(range(STEPS)) - set(ends.get(h, []))) for h in server.hosts}
            lost = {h: missing for h, missing in lost.items() if missing}
            twice = {h: idx for h, idx in ends.items() if len(idx) != len(set(idx))}
            figures["results_lost"] += len(not_ok) + sum(map(len, lost.values()))
            figures["results_recorded_twice"] += sum(len(i) - len(set(i)) for i in twice.values())
            figures["rounds"] += 1
            figures["hosts"] += len(hosts)
            bad = {h: lines for h, lines in markers.items() if lines != want}
            assert not bad, f"round {round_no} (job {job_id}): markers not exactly once: {bad}"
            assert not not_ok, f"round {round_no} (job {job_id}): hosts not ok: {not_ok}"
            assert not lost, f"round {round_no} (job {job_id}): step results never recorded: {lost}"
            assert not twice, f"round {round_no} (job {job_id}): step results recorded twice: {twice}"
            assert job["state"] == "succeeded"
    finally:  # the figures, passed or not (run with -s)
        figures["seconds"] = round(time.monotonic() - started, 1)
        print("\n" + "\n".join(log))
        print(f"kill-control figures: {json.dumps(figures)}")
