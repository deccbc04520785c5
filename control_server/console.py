"""The people's sink: live progress while a run goes, then a recap (the only rich module).

On a terminal a live panel shows hosts done / running / failed and each running host's
current step; elsewhere (pipes, CI logs) one line per finished host. The recap lists every
host's counts and time, then the failed steps' stderr and why hosts were unreachable.
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from control_server.events import (
    HOST_FAILED,
    HOST_OK,
    HOST_SKIPPED,
    HOST_UNREACHABLE,
    ExecutorEvent,
    HostFinished,
    HostStarted,
    RunEvent,
    RunFinished,
    RunStarted,
)

_STYLE = {HOST_OK: "green", HOST_FAILED: "red", HOST_UNREACHABLE: "magenta", HOST_SKIPPED: "dim"}
MAX_RUNNING_SHOWN = 12


class ConsoleSink:
    def __init__(self, file: IO[str] | None = None, live: bool | None = None,
                 verbose: bool = False, show_output: bool = False) -> None:
        out = file or sys.stdout
        self.console = Console(file=out, highlight=False, soft_wrap=False)
        if not self.console.is_terminal:
            # Logs and pipes have no width; rich's 80 columns would fold every table.
            self.console = Console(file=out, highlight=False, soft_wrap=False, width=160)
        self.live_enabled = self.console.is_terminal if live is None else live
        self.verbose = verbose
        self.show_output = show_output  # `exec`: print each host's output, as `ansible -a`
        self._outputs: dict[str, list[dict[str, Any]]] = {}
        self._facts: dict[str, dict[str, Any]] = {}
        self._addresses: dict[tuple[str, str], tuple[str, str]] = {}
        self._live: Live | None = None
        self._total = 0
        self._running: dict[str, str] = {}
        self._finished: list[HostFinished] = []
        self._started = time.monotonic()

    # --- events -----------------------------------------------------------------------

    def emit(self, event: RunEvent) -> None:
        if isinstance(event, RunStarted):
            self._on_start(event)
        elif isinstance(event, HostStarted):
            self._running[event.host] = "connecting"
        elif isinstance(event, ExecutorEvent):
            self._on_executor(event)
        elif isinstance(event, HostFinished):
            self._on_host_end(event)
        elif isinstance(event, RunFinished):
            self._on_end(event)
        if self._live is not None:
            self._live.update(self._panel())

    def _on_start(self, event: RunStarted) -> None:
        self._total = len(event.hosts)
        self._started = time.monotonic()
        mode = " (check mode: nothing will change)" if event.check else ""
        self.console.print(f"[bold]{event.what}[/] on {self._total} host(s){mode}")
        if self.live_enabled and self._total:
            self._live = Live(self._panel(), console=self.console, refresh_per_second=8,
                              transient=True)
            self._live.start()

    def _on_executor(self, event: ExecutorEvent) -> None:
        ev = event.event
        if ev.get("event") == "step_start":
            self._running[event.host] = f"{ev.get('index', 0) + 1}: {ev.get('name')}"
        elif ev.get("event") == "rollback_start":
            self._running[event.host] = "rolling back"
        if ev.get("event") == "step_end":
            if ev.get("action") == "facts" and isinstance(ev.get("data"), dict):
                self._facts[event.host] = ev["data"]
            found = instance_address(ev)
            if found is not None:
                self._addresses[(event.host, found[0])] = found[1:]
            if self.show_output:
                self._outputs.setdefault(event.host, []).append(ev)
            if self.verbose:
                self._print_step(event.host, ev)

    def _print_step(self, host: str, ev: dict[str, Any]) -> None:
        status = str(ev.get("status"))
        style = {"ok": "green", "changed": "yellow", "failed": "red"}.get(status, "dim")
        line = Text(f"{host} | ")
        line.append(f"{status:<7}", style=style)
        line.append(f" {ev.get('name')} ({ev.get('duration', 0):.2f}s)")
        self.console.print(line)

    def _print_output(self, event: HostFinished) -> None:
        for ev in self._outputs.pop(event.host, []):
            status = str(ev.get("status")).upper()
            line = Text(f"{event.host} | ")
            line.append(status, style={"OK": "green", "CHANGED": "yellow"}.get(status, "red"))
            line.append(f" | rc={ev.get('rc')} >>")
            self.console.print(line)
            for stream in ("stdout", "stderr"):
                text = str(ev.get(stream) or "").rstrip("\n")
                if text:
                    self.console.print(Text(text, style="" if stream == "stdout" else "dim"))
                if ev.get(f"{stream}_truncated"):
                    self.console.print(Text(f"[{stream} truncated]", style="dim"))

    def _on_host_end(self, event: HostFinished) -> None:
        self._running.pop(event.host, None)
        self._finished.append(event)
        if self.show_output:
            self._print_output(event)
        if self._live is None and not (self.show_output and event.status != HOST_UNREACHABLE):
            c = event.counts
            line = Text(f"{event.host} ")
            line.append(event.status.upper(), style=_STYLE.get(event.status, ""))
            line.append(f"  ok={c.ok} changed={c.changed} failed={c.failed} "
                        f"skipped={c.skipped}  {event.duration:.2f}s")
            if event.error and event.status != HOST_OK:
                line.append(f"  {event.error}", style="dim")
            self.console.print(line)

    def _on_end(self, event: RunFinished) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
        if self._facts:
            self.console.print(facts_table(self._facts))
        self.console.print(recap_table(event))
        if self._addresses:
            self.console.print(addresses_table(self._addresses))
        for detail in failure_details(event):
            self.console.print(detail)
        if event.stopped_early:
            self.console.print(f"[bold red]{event.stopped_early}[/]")

    # --- live panel -------------------------------------------------------------------

    def _panel(self) -> Group:
        done = len(self._finished)
        failed = sum(1 for f in self._finished if f.status == HOST_FAILED)
        unreachable = sum(1 for f in self._finished if f.status == HOST_UNREACHABLE)
        head = Text(f"{done}/{self._total} done, {len(self._running)} running, ")
        head.append(f"{failed} failed", style="red" if failed else "")
        head.append(", ")
        head.append(f"{unreachable} unreachable", style="magenta" if unreachable else "")
        head.append(f"  {time.monotonic() - self._started:.1f}s", style="dim")
        rows = [Text(f"  {h}: {s}", style="cyan") for h, s in
                list(self._running.items())[:MAX_RUNNING_SHOWN]]
        if len(self._running) > MAX_RUNNING_SHOWN:
            rows.append(Text(f"  ... and {len(self._running) - MAX_RUNNING_SHOWN} more"))
        return Group(head, *rows)


def recap_table(event: RunFinished) -> Table:
    table = Table(title="Recap", title_justify="left", show_edge=False)
    for col in ("host", "status", "ok", "changed", "failed", "skipped", "time"):
        table.add_column(col, justify="right" if col not in ("host", "status") else "left")
    for h in event.hosts:
        c = h.counts
        table.add_row(h.host, Text(h.status, style=_STYLE.get(h.status, "")), str(c.ok),
                      str(c.changed), str(c.failed), str(c.skipped), f"{h.duration:.2f}s")
    return table


def instance_address(ev: dict[str, Any]) -> tuple[str, str, str] | None:
    """(instance, address, source) from a step_end: a lease a ``wait`` found, or the
    static address of a cloud-init seed's network_config."""
    data = ev.get("data")
    if ev.get("status") not in ("ok", "changed") or not isinstance(data, dict):
        return None
    if ev.get("action") == "wait" and data.get("ip") and data.get("domain"):
        return str(data["domain"]), str(data["ip"]), "DHCP lease"
    if ev.get("action") == "cloud_init_seed" and data.get("address") and data.get("name"):
        return str(data["name"]), str(data["address"]), "static (network_config)"
    return None


def addresses_table(found: dict[tuple[str, str], tuple[str, str]]) -> Table:
    table = Table(title="Addresses", title_justify="left", show_edge=False)
    for col in ("host", "instance", "address", "from"):
        table.add_column(col)
    for (host, instance), (address, source) in sorted(found.items()):
        table.add_row(host, instance, address, source)
    return table


def failure_details(event: RunFinished) -> list[Text]:
    out: list[Text] = []
    for h in event.hosts:
        if h.status == HOST_UNREACHABLE:
            out.append(Text(f"UNREACHABLE {h.host} ({h.error_kind}): {h.error}", style="magenta"))
        elif h.status == HOST_FAILED:
            if not h.failed_steps:
                out.append(Text(f"FAILED {h.host}: {h.error}", style="red"))
            for step in h.failed_steps:
                index = step.get("index")
                num = index + 1 if isinstance(index, int) else "?"
                msg = step.get("msg") or ""
                text = Text(f"FAILED {h.host} step {num} {step.get('name')!r} "
                            f"(rc={step.get('rc')}): {msg}", style="red")
                stderr = str(step.get("stderr") or "").strip()
                if stderr:
                    text.append("\n    " + "\n    ".join(stderr.splitlines()[-20:]), style="dim")
                out.append(text)
    return out


def _gib(value: Any) -> str:
    return f"{value / 2**30:.1f}" if isinstance(value, int | float) else "?"


def _root_disk(disks: Any) -> str:
    for disk in disks if isinstance(disks, list) else []:
        if isinstance(disk, dict) and disk.get("mount") == "/":
            return f"{_gib(disk.get('available'))} GiB free"
    return "?"


def _sub(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def _virt(data: dict[str, Any]) -> tuple[str, str]:
    kvm = _sub(data, "kvm")
    kvm_text = "usable" if kvm.get("usable") else ("present" if kvm.get("present") else "no")
    lv = _sub(data, "libvirt")
    if not lv.get("available"):
        return kvm_text, "no"
    version = lv.get("version") or lv.get("libvirt_version") or "yes"
    qemu = lv.get("qemu_version")
    return kvm_text, f"{version}" + (f" / qemu {qemu}" if qemu else "")


def facts_table(facts: dict[str, dict[str, Any]]) -> Table:
    """One row per host of what ``facts`` found: what a person checks before placing VMs."""
    table = Table(title="Facts", title_justify="left", show_edge=False)
    for col in ("host", "os", "kernel", "cpus", "mem GiB avail/total", "disk /",
                "python", "kvm", "libvirt"):
        table.add_column(col)
    for host, data in facts.items():
        os_info = _sub(data, "os")
        kernel = _sub(data, "kernel")
        cpu = _sub(data, "cpu")
        mem = _sub(data, "memory")
        py = _sub(data, "python")
        kvm, libvirt = _virt(data)
        table.add_row(
            host, f"{os_info.get('id', '?')} {os_info.get('version_id', '')}".strip(), str(kernel.get("release", "?")),
            str(cpu.get("count", "?")), f"{_gib(mem.get('available'))}/{_gib(mem.get('total'))}",
            _root_disk(data.get("disks")), str(py.get("version", "?")), kvm, libvirt,
        )
    return table
