"""The whole path on real SSH hosts: CLI and library API -> asyncssh -> executor -> results.

No mocks: a lab of Docker containers with real sshd, real python3, the real executor.
"""

from __future__ import annotations

import asyncio
import json
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest

from control_server import api
from control_server.events import ExecutorEvent, HostFinished, RunEvent
from control_server.inventory import Inventory
from control_server.lab import Lab, refresh_known_hosts, replace_host_key, start_host, stop_host
from control_server.runner import RunOptions
from host_executor import protocol

pytestmark = pytest.mark.lab

TEN_STEPS = textwrap.dedent(
    """\
    {#
    description: Ten small steps of every kind.
    params:
      marker: {required: true, description: a unique word for this run}
    #}
    steps:
      - name: echo
        command: {argv: [echo, "{{ marker }}"]}
      - name: shell pipe
        shell: {cmd: "echo {{ marker | quote }} | tr a-z A-Z"}
      - name: workdir
        file: {path: "/tmp/hp-{{ marker }}", state: directory, mode: "0750"}
      - name: a file
        file: {path: "/tmp/hp-{{ marker }}/a.txt", content: "hello {{ marker }}\\n"}
      - name: the file again, unchanged
        file: {path: "/tmp/hp-{{ marker }}/a.txt", content: "hello {{ marker }}\\n"}
      - name: wait for it
        wait: {path: "/tmp/hp-{{ marker }}/a.txt", pattern: "hello", timeout: 5}
      - name: creates skips
        command: {argv: [touch, "/tmp/hp-{{ marker }}/a.txt"], creates: "/tmp/hp-{{ marker }}/a.txt"}
      - name: env and cwd
        command: {argv: [sh, -c, 'echo "$HP_X $(pwd)"'], env: {HP_X: "x1"}, cwd: /tmp}
      - name: stdin
        command: {argv: [cat], stdin: "from stdin"}
      - name: facts
        facts: {}
    """
)


def _run(lab: Lab, pattern: str, task: api.Task, evars: dict[str, Any] | None = None,
         templates: Path | None = None, **opts: Any) -> tuple[Any, list[RunEvent]]:
    events: list[RunEvent] = []

    class Sink:
        def emit(self, event: RunEvent) -> None:
            events.append(event)

    inv = Inventory.load([str(lab.inventory)])
    config = api.RunConfig(options=RunOptions(**opts),
                           templates_dirs=(templates,) if templates else ())
    result = asyncio.run(api.run(inv, pattern, task, evars or {}, config, [Sink()]))
    return result, events


def _step_ends(events: list[RunEvent], host: str) -> list[dict[str, Any]]:
    return [e.event for e in events if isinstance(e, ExecutorEvent) and e.host == host
            and e.event["event"] == "step_end"]


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("templates")
    (folder / "ten_steps.yaml.j2").write_text(TEN_STEPS)
    (folder / "fail_on_first.yaml.j2").write_text(textwrap.dedent("""\
        {#
        description: Fails on the first lab host only.
        params: {}
        #}
        steps:
          - name: maybe fail
            command: {argv: [sh, -c, "exit {{ 1 if inventory_hostname.endswith('-1') else 0 }}"]}
        """))
    return folder


def test_ten_steps_on_every_host(lab: Lab, templates: Path) -> None:
    marker = uuid.uuid4().hex[:8]
    result, events = _run(lab, "all", api.TemplateTask("ten_steps"), {"marker": marker},
                          templates)
    assert result.exit_code == 0, [(h.host, h.status, h.error) for h in result.hosts.values()]
    for host in lab.hosts:
        ends = _step_ends(events, host.name)
        assert [e["status"] for e in ends] == [
            "changed", "changed", "changed", "changed", "ok", "ok", "ok", "changed",
            "changed", "ok"]
        assert ends[0]["stdout"] == f"{marker}\n"
        assert ends[1]["stdout"] == f"{marker.upper()}\n"
        assert ends[7]["stdout"] == "x1 /tmp\n"
        assert ends[8]["stdout"] == "from stdin"
        assert ends[9]["data"]["python"]["version"].startswith("3.")
        finished = result.hosts[host.name]
        assert (finished.counts.ok, finished.counts.changed) == (4, 6)


def test_check_mode_changes_nothing(lab: Lab, templates: Path, tools: Any) -> None:
    marker = uuid.uuid4().hex[:8]
    result, events = _run(lab, "all", api.TemplateTask("ten_steps"), {"marker": marker},
                          templates, check=True)
    host = lab.hosts[0].name
    statuses = {e["name"]: e["status"] for e in _step_ends(events, host)}
    assert statuses["a file"] == "changed"  # would change
    assert tools.ssh(host, f"ls -d /tmp/hp-{marker} 2>/dev/null; echo end") == "end\n"
    assert result.exit_code in (0, 2)  # the wait step may fail: nothing was written


def test_executor_uploaded_once_per_host_and_nothing_left_running(lab: Lab, tools: Any) -> None:
    for host in lab.hosts:
        tools.ssh(host.name, "rm -rf ~/.cache/hostplane")
    first, _ = _run(lab, "all", api.AdhocTask(("true",)))
    second, _ = _run(lab, "all", api.AdhocTask(("true",)))
    assert all(r.uploaded for r in first.hosts.values()), first.hosts
    assert not any(r.uploaded for r in second.hosts.values())
    for host in lab.hosts:
        procs = tools.ssh(host.name, "ps -eo args | grep -c '[h]ostplane-executor' || true")
        assert procs.strip() == "0"
        mode = tools.ssh(host.name, "stat -c %a ~/.cache/hostplane")
        assert mode.strip() == "700"


def test_exec_cli_and_json_lines(lab: Lab, tools: Any) -> None:
    proc = tools.hostplane("exec", "-i", str(lab.inventory), "all", "--json", "--",
                           "uname", "-s")
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert lines[0]["kind"] == "run_start" and lines[-1]["kind"] == "run_end"
    outs = [ln["event"]["stdout"] for ln in lines
            if ln["kind"] == "executor" and ln["event"]["event"] == "step_end"]
    assert outs == ["Linux\n"] * 3
    human = tools.hostplane("exec", "-i", str(lab.inventory), "all", "--", "hostname")
    assert human.returncode == 0
    for host in lab.hosts:
        assert host.name in human.stdout


def test_non_utf8_and_oversized_output(lab: Lab) -> None:
    host = lab.hosts[0].name
    result, events = _run(lab, host, api.AdhocTask(
        ("sh", "-c", r"printf 'a\377\376b'; head -c 1100000 /dev/zero >&2")))
    assert result.exit_code == 0
    end = _step_ends(events, host)[0]
    assert protocol.output_bytes(end, "stdout") == b"a\xff\xfeb"
    assert end["stderr_truncated"] is True
    assert len(protocol.output_bytes(end, "stderr")) == protocol.DEFAULT_OUTPUT_LIMIT


def test_step_timeout_kills_the_process_group(lab: Lab, tools: Any) -> None:
    host = lab.hosts[1].name
    marker = f"hp{uuid.uuid4().hex[:8]}"
    script = f"sleep 300 & exec -a {marker} sleep 301"
    result, events = _run(lab, host, api.AdhocTask(("bash", "-c", script), timeout=1.5))
    assert result.exit_code == 2
    assert "timed out" in _step_ends(events, host)[0]["msg"]
    pattern = f"[s]leep 30[01]\\|[{marker[0]}]{marker[1:]}"
    left = tools.ssh(host, f"ps -eo args | grep -c '{pattern}' || true")
    assert left.strip() == "0"


def test_serial_and_max_fail_percentage_stop(lab: Lab, templates: Path, tools: Any) -> None:
    def statuses(*flags: str) -> tuple[list[str], str | None]:
        proc = tools.hostplane("run", "-i", str(lab.inventory), "--templates", str(templates),
                               "all", "fail_on_first", "--json", *flags)
        assert proc.returncode == 2, proc.stderr
        end = json.loads(proc.stdout.splitlines()[-1])
        return [h["status"] for h in end["hosts"]], end["stopped_early"]

    # Batch 1 = hosts 1-2: 50% failed > 40%: host 3 never runs.
    got, why = statuses("--serial", "2", "--max-fail-percentage", "40")
    assert got == ["failed", "ok", "skipped"]
    assert why is not None and "max-fail-percentage" in why
    # Without the limit, every batch runs.
    assert statuses("--serial", "2")[0] == ["failed", "ok", "ok"]
    # As in Ansible, a batch where every host failed ends the run.
    got, why = statuses("--serial", "1")
    assert got == ["failed", "skipped", "skipped"]
    assert why is not None and "every host of the batch failed" in why


def test_stopped_host_is_unreachable_others_succeed(lab: Lab, tmp_path: Path,
                                                     tools: Any) -> None:
    victim = lab.hosts[2]
    stop_host(lab, victim)
    try:
        retry = tmp_path / "retry"
        proc = tools.hostplane("exec", "-i", str(lab.inventory), "all", "-T", "3",
                               "--retry-file", str(retry), "--", "true")
    finally:
        start_host(lab, victim)
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert f"UNREACHABLE {victim.name} (connect)" in proc.stdout
    assert retry.read_text() == f"{victim.name}\n"


def test_replaced_host_key_is_refused(lab: Lab, tools: Any) -> None:
    victim = lab.hosts[1]
    replace_host_key(lab, victim)
    try:
        proc = tools.hostplane("exec", "-i", str(lab.inventory), victim.name, "--", "true")
    finally:
        refresh_known_hosts(lab)
    assert proc.returncode == 4
    assert "host key mismatch" in proc.stdout


def test_cut_connection_is_reattached_and_the_step_finishes(lab: Lab) -> None:
    host = lab.hosts[0].name
    inv = Inventory.load([str(lab.inventory)])
    task = api.AdhocTask(("sh", "-c", "sleep 2; echo finished"))
    plans = api.plan_hosts(inv.hosts(host), task, {}, api.RunConfig())
    plan = plans[0]
    events: list[RunEvent] = []

    class CutOnStart:
        def emit(self, event: RunEvent) -> None:
            events.append(event)
            if isinstance(event, ExecutorEvent) and event.event["event"] == "step_start":
                plan.transport.abort()  # type: ignore[attr-defined]

    result = asyncio.run(api.execute_plans(plans, api.RunConfig(), [CutOnStart()]))
    finished = result.hosts[host]
    assert isinstance(finished, HostFinished)
    assert finished.error_kind == "reattached", finished.error
    assert finished.status == "ok"
    ends = [e.event for e in events if isinstance(e, ExecutorEvent)
            and e.event["event"] in ("step_end", "done")]
    assert [e["event"] for e in ends] == ["step_end", "done"]  # each once, from the journal
    assert ends[0]["stdout"] == "finished\n" and ends[1]["interrupted"] is False
    assert ends[1]["detached"]
    # And the CLI reads the same journal back.
    rid = plan.request["id"]
    journal = asyncio.run(api.fetch_journal(inv.host(host), rid))
    assert journal[-1]["event"] == "done"


def test_become_runs_the_executor_through_sudo(lab: Lab, tools: Any) -> None:
    proc = tools.hostplane("exec", "-i", str(lab.inventory), lab.hosts[0].name, "--json",
                           "--become", "--", "id", "-u")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ends = [json.loads(line)["event"] for line in proc.stdout.splitlines()
            if '"step_end"' in line]
    assert ends[0]["stdout"] == "0\n"


def test_paramiko_transport_runs_the_same_sequence(lab: Lab, templates: Path, tools: Any) -> None:
    marker = uuid.uuid4().hex[:8]
    proc = tools.hostplane("run", "-i", str(lab.inventory), "--templates", str(templates),
                           "all", "ten_steps", "-e", f"marker={marker}", "--transport",
                           "paramiko", "--json")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
    end = json.loads(proc.stdout.splitlines()[-1])
    assert [h["counts"]["changed"] for h in end["hosts"]] == [6, 6, 6]


def test_accept_new_learns_keys_and_strict_refuses_unknown(lab: Lab, tmp_path: Path,
                                                            tools: Any) -> None:
    known = tmp_path / "known_hosts"
    inv = tmp_path / "hosts.ini"
    host = lab.hosts[0]
    inv.write_text(f"{host.name} ansible_host={host.address} ansible_user=hostplane "
                   f"ansible_ssh_private_key_file={lab.key}\n")
    known.write_text("")
    strict = tools.hostplane("exec", "-i", str(inv), "all", "--known-hosts", str(known), "--",
                             "true")
    assert strict.returncode == 4
    assert "host key unknown" in strict.stdout
    learn = tools.hostplane("exec", "-i", str(inv), "all", "--known-hosts", str(known),
                            "--host-key-checking", "accept-new", "--", "true")
    assert learn.returncode == 0, learn.stdout + learn.stderr
    assert host.address in known.read_text()
    again = tools.hostplane("exec", "-i", str(inv), "all", "--known-hosts", str(known), "--",
                            "true")
    assert again.returncode == 0
    off = tools.hostplane("exec", "-i", str(inv), "all", "--known-hosts", str(tmp_path / "x"),
                          "--host-key-checking", "off", "--", "true")
    assert off.returncode == 0 and "NOT verified" in off.stderr


def test_results_fetch_cli_reads_a_journal(lab: Lab, tools: Any) -> None:
    host = lab.hosts[2].name
    proc = tools.hostplane("exec", "-i", str(lab.inventory), host, "--json", "--", "echo", "kept")
    hello = next(json.loads(line)["event"] for line in proc.stdout.splitlines()
                 if '"hello"' in line)
    fetched = tools.hostplane("results", "fetch", "-i", str(lab.inventory), host, hello["id"])
    assert fetched.returncode == 0, fetched.stderr
    events = [json.loads(line) for line in fetched.stdout.splitlines()]
    assert events[-1]["event"] == "done"
    assert any(e.get("stdout") == "kept\n" for e in events)
