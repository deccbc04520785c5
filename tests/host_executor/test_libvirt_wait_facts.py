"""wait on domains and serial logs, the libvirt part of facts, the missing bindings, and the
pure helpers (XML comparison, sizes, KVM and domain type decisions) in-process."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from executor_harness import Executor, request, step
from libvirt_harness import (
    SYSTEM_PYTHON,
    TEST_URI,
    by_name,
    domain_xml,
    lv_step,
    needs_libvirt,
    run,
)

from host_executor.actions import libvirt_common, libvirt_xml


@pytest.fixture
def lv(tmp_path: Path) -> Executor:
    return Executor(tmp_path / "cache", python=SYSTEM_PYTHON)


def dom(title: str, /, **args: object) -> dict[str, object]:
    args.setdefault("name", "vm1")
    return lv_step(title, "libvirt_domain", **args)


# --- wait -------------------------------------------------------------------------------


@needs_libvirt
def test_wait_for_domain_states(lv: Executor) -> None:
    steps = [lv_step("absent", "wait", domain="vm1", state="absent", timeout=1),
             dom("define", xml=domain_xml()),
             lv_step("defined", "wait", domain="vm1", state="defined", timeout=1),
             lv_step("shutoff", "wait", domain="vm1", state="shutoff", timeout=1),
             dom("start", state="running"),
             lv_step("running", "wait", domain="vm1", timeout=1),
             {**lv_step("never paused", "wait", domain="vm1", state="paused", timeout=0.3, interval=0.1),
              "ignore_errors": True}]
    ends = by_name(run(lv, steps))
    for name in ("absent", "defined", "shutoff", "running"):
        assert ends[name]["status"] == "ok", ends[name]
    assert ends["running"]["msg"].startswith("domain vm1 running: ready after ")
    never = ends["never paused"]
    assert never["status"] == "failed" and never["msg"] == "timed out after 0.3 s waiting for domain vm1 paused"
    assert never["data"]["domain_state"] == "running"


@needs_libvirt
def test_wait_for_a_pattern_in_the_domain_serial_log(lv: Executor, tmp_path: Path) -> None:
    log = tmp_path / "vm1.serial.log"
    xml = domain_xml(serial_log=str(log))
    # The log is emptied at start; the step after the start writes the marker, as a guest would.
    writer = step("guest prints", "shell", cmd=f"printf 'Command line: x\\r\\nHOSTPLANE-GUEST-READY\\r\\n' >> {log}")
    steps = [dom("start", xml=xml, state="running"), writer,
             lv_step("ready", "wait", domain="vm1", pattern="(?m)^HOSTPLANE-GUEST-READY\\r?$", timeout=2),
             lv_step("by path", "wait", domain="vm1", serial_log=str(log), pattern="READY", timeout=2),
             dom("stop", state="shutoff", shutdown_timeout=0),
             {**lv_step("stopped", "wait", domain="vm1", pattern="NEVER", timeout=30), "ignore_errors": True}]
    ends = by_name(run(lv, steps))
    ready = ends["ready"]
    assert ready["status"] == "ok" and ready["data"]["serial_log"] == str(log)
    assert ready["data"]["match"] == "HOSTPLANE-GUEST-READY\r" and ready["data"]["domain_state"] == "running"
    assert ends["by path"]["status"] == "ok"
    stopped = ends["stopped"]
    # Fails at once, not after 30 s: the domain stopped before the pattern appeared.
    assert stopped["status"] == "failed" and stopped["duration"] < 5
    assert stopped["msg"] == f"domain vm1 is shutoff: it stopped before pattern 'NEVER' in {log}"


@needs_libvirt
def test_wait_check_mode_and_errors(lv: Executor, tmp_path: Path) -> None:
    ends = by_name(run(lv, [lv_step("check", "wait", domain="nope", state="running")], check=True))
    assert ends["check"]["status"] == "skipped"
    assert ends["check"]["msg"] == "would wait for domain nope running (not ready now)"
    ends = by_name(run(lv, [dom("define", xml=domain_xml()),
                            {**lv_step("no log", "wait", domain="vm1", pattern="x"), "ignore_errors": True},
                            {**lv_step("no domain", "wait", domain="vm2", pattern="x"), "ignore_errors": True}]))
    assert ends["no log"]["msg"] == "domain vm1 has no serial log file (<serial type='pty'><log file=...>)"
    assert ends["no domain"]["msg"] == "domain vm2 is not defined (no serial log to search)"
    bad = lv.run(request([lv_step("bad", "wait", domain="vm1", state="sleeping")]))
    assert bad.rc == 2 and bad.one("error")["field"] == "args.state"


def test_serial_log_wait_needs_no_bindings(executor: Executor, tmp_path: Path) -> None:
    log = tmp_path / "serial.log"
    log.write_text("booting\nHOSTPLANE-GUEST-READY\n")
    out = executor.run(request([step("w", "wait", serial_log=str(log), pattern="GUEST-READY", timeout=2)]))
    end = out.one("step_end")
    assert end["status"] == "ok" and end["data"]["match"] == "GUEST-READY"


# --- facts ------------------------------------------------------------------------------


@needs_libvirt
def test_facts_libvirt_part(tmp_path: Path) -> None:
    lv = Executor(tmp_path / "cache", python=SYSTEM_PYTHON, extra_env={"LIBVIRT_DEFAULT_URI": TEST_URI})
    data = run(lv, [step("facts", "facts", gather=["libvirt", "kvm"])]).one("step_end")["data"]
    facts = data["libvirt"]
    assert facts["available"] is True and facts["connected"] is True and facts["uri"] == TEST_URI
    assert facts["versions"]["hypervisor"] == "TEST"
    assert facts["versions"]["libvirt"].count(".") == 2 and facts["bindings_version"].count(".") == 2
    assert facts["kvm"]["domain_type"] == "test" and isinstance(facts["kvm"]["usable"], bool)
    assert facts["kvm"]["reason"]
    assert facts["cpu"]["count"] == 16 and facts["memory"]["total"] > 0 and facts["memory"]["free"] > 0
    assert [(p["name"], p["active"], p["available"]) for p in facts["pools"]] == [("default-pool", True, 107374182400)]
    assert [(n["name"], n["active"], n["bridge"]) for n in facts["networks"]] == [("default", True, "virbr0")]
    assert facts["domains"] == [{
        "name": "test", "uuid": "6695eb01-f6a4-8304-79aa-97f2502e193f", "state": "running",
        "active": True, "persistent": True, "autostart": False, "id": 1, "vcpus": 2,
        "memory": 8 << 30, "current_memory": 2 << 30}]
    # The kvm group checks usability, not presence: the same answer as libvirt's part.
    assert data["kvm"]["usable"] == libvirt_common.kvm_status()["usable"]


def test_facts_without_bindings(executor: Executor) -> None:
    data = executor.run(request([step("facts", "facts", gather=["libvirt"])])).one("step_end")["data"]
    assert data["libvirt"] == {"available": False, "reason": "python3-libvirt is not installed"}


@needs_libvirt
def test_facts_when_libvirt_does_not_answer(tmp_path: Path) -> None:
    lv = Executor(tmp_path / "cache", python=SYSTEM_PYTHON,
                  extra_env={"LIBVIRT_DEFAULT_URI": f"test://{tmp_path}/missing.xml"})
    facts = run(lv, [step("facts", "facts", gather=["libvirt"])]).one("step_end")["data"]["libvirt"]
    assert facts["available"] is True and facts["connected"] is False
    assert facts["error"].startswith("libvirt error ") and "kvm" in facts


def test_every_libvirt_action_names_the_missing_package(executor: Executor) -> None:
    steps = [{**lv_step(a, a, name="x", state="absent", **({"pool": "p"} if a == "libvirt_volume" else {})),
              "ignore_errors": True}
             for a in ("libvirt_domain", "libvirt_network", "libvirt_pool", "libvirt_volume")]
    for end in executor.run(request(steps)).ends:
        assert end["status"] == "failed" and end["data"] == {"missing": "python3-libvirt"}
        assert end["msg"].startswith("the libvirt Python bindings are not installed on this host: "
                                     "install python3-libvirt")


# --- pure helpers -----------------------------------------------------------------------


@pytest.mark.parametrize(("text", "size"), [
    (1024, 1024), ("1024", 1024), ("1G", 1 << 30), ("1GiB", 1 << 30), ("1 GB", 10 ** 9),
    ("512M", 512 << 20), ("1.5K", 1536), ("2t", 2 << 40), ("7b", 7), ("3 bytes", 3),
])
def test_sizes(text: Any, size: int) -> None:
    assert libvirt_xml.parse_size(text) == size


@pytest.mark.parametrize("bad", ["", "G", "1Q", "-1", "1e3", True, -5])
def test_bad_sizes(bad: Any) -> None:
    with pytest.raises(ValueError):
        libvirt_xml.parse_size(bad)


def _diff(want: str, have: str) -> list[str]:
    return libvirt_xml.differences(ET.fromstring(want), ET.fromstring(have))


def test_differences_compare_only_what_is_given_with_units() -> None:
    have = ("<domain type='qemu'><name>a</name><uuid>u</uuid><memory unit='KiB'>262144</memory>"
            "<os><type arch='x86_64' machine='pc-i440fx-7.2'>hvm</type><kernel>/k</kernel></os>"
            "<devices><disk type='file'><target dev='vdb'/></disk><disk type='file'><target dev='vda'/></disk>"
            "<controller type='usb'/><interface type='network'><mac address='m'/><source network='n'/>"
            "</interface></devices></domain>")
    same = ("<domain type='qemu'><name>a</name><memory unit='MiB'>256</memory>"
            "<os><type arch='x86_64'>hvm</type><kernel>/k</kernel></os><devices><disk type='file'>"
            "<target dev='vda'/></disk><disk type='file'><target dev='vdb'/></disk>"
            "<interface type='network'><source network='n'/></interface></devices></domain>")
    assert _diff(same, have) == []
    changed = (same.replace("type='qemu'", "type='kvm'").replace(">256<", ">0.5<").replace("MiB", "GiB")
               .replace("<kernel>/k</kernel>", "").replace("network='n'", "network='m'"))
    assert _diff(changed, have) == ["type qemu -> kvm", "memory 262144 -> 524288 KiB", "os/kernel removed",
                                    "devices/interface/source/@network n -> m"]


def test_differences_added_and_removed_devices() -> None:
    have = "<domain><devices><serial type='pty'/><interface type='network'/><interface type='network'/></devices></domain>"
    want = "<domain><devices><serial type='pty'/><serial type='file'/><interface type='network'/></devices></domain>"
    assert _diff(want, have) == ["devices/serial[2] added", "devices/interface removed"]


def test_keep_macs_by_network_then_order() -> None:
    have = ET.fromstring("<domain><devices>"
                         "<interface type='network'><mac address='aa'/><source network='a'/></interface>"
                         "<interface type='network'><mac address='bb'/><source network='b'/></interface>"
                         "</devices></domain>")
    want = ET.fromstring("<domain><devices><interface type='network'><source network='b'/></interface>"
                         "<interface type='network'><source network='c'/></interface>"
                         "<interface type='network'><source network='d'/></interface></devices></domain>")
    assert libvirt_xml.keep_macs(want, have) == ["bb", "aa"]
    assert [m.get("address") for m in want.iter("mac")] == ["bb", "aa"]


class _Conn:
    def __init__(self, types: list[str], domcaps_error: Exception | None = None) -> None:
        self.types = types
        self.domcaps_error = domcaps_error

    def getCapabilities(self) -> str:
        domains = "".join(f"<domain type='{t}'/>" for t in self.types)
        return (f"<capabilities><guest><os_type>hvm</os_type><arch name='x86_64'>{domains}</arch>"
                "</guest></capabilities>")

    def getDomainCapabilities(self, *args: Any) -> str:
        if self.domcaps_error is not None:
            raise self.domcaps_error
        return "<domainCapabilities/>"

    def getType(self) -> str:
        return "QEMU"


class _LibvirtError(Exception):
    def get_error_code(self) -> int:
        return 1

    def get_error_message(self) -> str:
        return "invalid argument: KVM is not supported by '/usr/bin/qemu-system-x86_64' on this host"


class _Bindings:
    libvirtError = _LibvirtError
    VIR_ERR_NO_SUPPORT = 3


def _choose(conn: _Conn, usable: bool, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    status = {"present": True, "usable": usable, "reason": "ok" if usable else "no vmx"}
    monkeypatch.setattr(libvirt_common, "kvm_status", lambda: dict(status))
    session = libvirt_common.Session(_Bindings(), conn, "qemu:///system", None)  # type: ignore[arg-type]
    return libvirt_common.choose_domain_type(session, "x86_64")


def test_domain_type_kvm_only_where_usable(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _choose(_Conn(["qemu", "kvm"]), True, monkeypatch)[0] == "kvm"
    chosen, why = _choose(_Conn(["qemu", "kvm"]), False, monkeypatch)
    assert (chosen, why) == ("qemu", "KVM is not usable: no vmx")
    # /dev/kvm answers, but libvirt (QEMU) cannot use it.
    chosen, why = _choose(_Conn(["qemu", "kvm"], _LibvirtError()), True, monkeypatch)
    assert chosen == "qemu" and "KVM is not supported" in why
    assert _choose(_Conn(["qemu"]), True, monkeypatch) == ("qemu", "KVM is not usable: libvirt offers no kvm domain type")


def test_kvm_status_reports_why(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(libvirt_common, "KVM_DEVICE", str(tmp_path / "kvm"))
    status = libvirt_common.kvm_status()
    assert status == {"present": False, "usable": False, "api_version": None,
                      "reason": f"{tmp_path / 'kvm'} does not exist"}
    (tmp_path / "kvm").write_text("")
    status = libvirt_common.kvm_status()
    assert status["present"] is True and status["usable"] is False
    assert status["reason"].startswith("KVM ioctl failed on ")  # a plain file is no KVM device
