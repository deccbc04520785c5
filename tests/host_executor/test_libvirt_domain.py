"""libvirt_domain on libvirt's test driver: define, redefine (UUID and MACs kept), run
states, absent with storage, check mode, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from executor_harness import Executor
from libvirt_harness import (
    SYSTEM_PYTHON,
    TEST_URI,
    by_name,
    domain_xml,
    lv_step,
    needs_libvirt,
    node_file,
    run,
)

pytestmark = needs_libvirt


@pytest.fixture
def lv(tmp_path: Path) -> Executor:
    return Executor(tmp_path / "cache", python=SYSTEM_PYTHON)


def dom(title: str, /, **args: object) -> dict[str, object]:
    args.setdefault("name", "vm1")
    return lv_step(title, "libvirt_domain", **args)


def test_define_is_idempotent_and_reports_the_domain(lv: Executor) -> None:
    xml = domain_xml()
    out = run(lv, [dom("define", xml=xml, state="defined"), dom("again", xml=xml, state="defined")])
    first, again = out.ends
    assert first["status"] == "changed" and first["msg"] == "domain vm1: defined"
    assert again["status"] == "ok" and again["msg"] == "domain vm1 is shutoff"
    data = again["data"]
    assert data["uuid"] == first["data"]["uuid"] and data["exists"] and data["persistent"]
    assert (data["state"], data["vcpus"], data["memory"], data["autostart"]) == ("shutoff", 1, 256 << 20, False)
    # type 'auto' is decided on the host: the test driver offers only its own type.
    assert data["type"] == "test"
    assert first["data"]["domain_type"] == {"chosen": "test", "reason": "the TEST driver offers only test"}
    assert len(data["macs"]) == 1 and data["changes"] == []


def test_redefinition_keeps_uuid_and_macs_and_names_the_differences(lv: Executor) -> None:
    v1 = domain_xml(networks=("default", "other"))
    v2 = domain_xml(memory_mib=512, vcpus=2, networks=("default", "other"))
    out = run(lv, [dom("v1", xml=v1), dom("v2", xml=v2), dom("v2 again", xml=v2)])
    ends = by_name(out)
    before, after = ends["v1"]["data"], ends["v2"]["data"]
    assert ends["v2"]["status"] == "changed"
    assert ends["v2"]["msg"] == ("domain vm1: redefined (memory 262144 -> 524288 KiB, "
                                 "currentMemory 262144 -> 524288 KiB, vcpu 1 -> 2)")
    assert after["uuid"] == before["uuid"] and after["macs"] == before["macs"]
    assert len(set(after["macs"])) == 2
    assert (after["vcpus"], after["memory"]) == (2, 512 << 20)
    assert ends["v2 again"]["status"] == "ok"


def test_macs_follow_their_network_when_interfaces_are_reordered(lv: Executor) -> None:
    out = run(lv, [dom("v1", xml=domain_xml(networks=("a", "b"))),
                   dom("swapped", xml=domain_xml(networks=("b", "a")))])
    v1, swapped = out.ends
    assert swapped["status"] == "changed"
    assert swapped["data"]["macs"] == list(reversed(v1["data"]["macs"]))


def test_removed_and_added_devices_are_changes(lv: Executor, tmp_path: Path) -> None:
    log = str(tmp_path / "vm1.log")
    out = run(lv, [dom("v1", xml=domain_xml(networks=("default",))),
                   dom("no nic", xml=domain_xml(networks=())),
                   dom("serial", xml=domain_xml(networks=(), serial_log=log)),
                   dom("disk boot", xml=domain_xml(networks=(), serial_log=log, kernel=False))])
    ends = by_name(out)
    assert ends["no nic"]["status"] == "changed" and "devices/interface removed" in ends["no nic"]["msg"]
    assert "devices/serial added" in ends["serial"]["msg"]
    assert ends["serial"]["data"]["serial_logs"] == [log]
    assert "os/kernel removed" in ends["disk boot"]["msg"]


def test_redefinition_of_an_existing_domain_from_a_node_file(lv: Executor, tmp_path: Path) -> None:
    # A domain that exists before the request, with its own UUID and MAC.
    uuid, mac = "11111111-2222-3333-4444-555555555555", "52:54:00:12:34:56"
    existing = domain_xml(dtype="test").replace(
        "<name>vm1</name>", f"<name>vm1</name><uuid>{uuid}</uuid>").replace(
        "<source network='default'/>", f"<mac address='{mac}'/><source network='default'/>")
    uri = node_file(tmp_path, existing)
    out = run(lv, [dom("same", uri=uri, xml=domain_xml()),
                   dom("bigger", uri=uri, xml=domain_xml(memory_mib=1024))])
    same, bigger = out.ends
    assert same["status"] == "ok", same["msg"]
    assert bigger["status"] == "changed" and "memory 262144 -> 1048576 KiB" in bigger["msg"]
    assert bigger["data"]["uuid"] == uuid and bigger["data"]["macs"] == [mac]


def test_run_states_and_their_idempotency(lv: Executor) -> None:
    xml = domain_xml()
    steps = [dom("define", xml=xml, autostart=True),
             dom("start", state="running"), dom("start again", state="running"),
             dom("pause", state="paused"), dom("pause again", state="paused"),
             dom("resume", state="running"),
             dom("reboot", state="running", reboot=True),
             dom("stop", state="shutoff", shutdown_timeout=5), dom("stop again", state="shutoff"),
             dom("reboot starts", state="running", reboot=True),
             dom("power off", state="shutoff", shutdown_timeout=0),
             dom("start paused", state="paused")]
    ends = by_name(run(lv, steps))
    expect = {
        "define": ("changed", "domain vm1: defined, autostart on", "shutoff"),
        "start": ("changed", "domain vm1: started", "running"),
        "start again": ("ok", "domain vm1 is running", "running"),
        "pause": ("changed", "domain vm1: paused", "paused"),
        "pause again": ("ok", "domain vm1 is paused", "paused"),
        "resume": ("changed", "domain vm1: resumed", "running"),
        "reboot": ("changed", "domain vm1: rebooted (ACPI)", "running"),
        "stop again": ("ok", "domain vm1 is shutoff", "shutoff"),
        "reboot starts": ("changed", "domain vm1: started", "running"),
        "power off": ("changed", "domain vm1: powered off", "shutoff"),
        "start paused": ("changed", "domain vm1: started paused", "paused"),
    }
    for name, (status, msg, state) in expect.items():
        end = ends[name]
        assert (end["status"], end["msg"], end["data"]["state"]) == (status, msg, state), name
    stop = ends["stop"]
    assert stop["status"] == "changed" and stop["msg"].startswith("domain vm1: shut down (ACPI")
    assert ends["define"]["data"]["autostart"] is True


def test_start_empties_the_serial_log(lv: Executor, tmp_path: Path) -> None:
    log = tmp_path / "vm1.serial.log"
    log.write_text("HOSTPLANE-GUEST-READY\r\n")
    out = run(lv, [dom("define", xml=domain_xml(serial_log=str(log)), state="running"),
                   lv_step("old marker", "wait", domain="vm1", pattern="READY", timeout=0.5)])
    start, wait = out.ends
    assert start["status"] == "changed" and log.read_text() == ""
    assert wait["status"] == "failed" and wait["msg"].startswith("timed out after 0.5 s waiting for ")


def test_absent_removes_domain_and_its_pool_volumes(lv: Executor) -> None:
    steps = [lv_step("volume", "libvirt_volume", pool="default-pool", name="vm1.qcow2", capacity="1M",
                     format="qcow2"),
             dom("define", xml=domain_xml(volume="vm1.qcow2"), state="running"),
             dom("absent", state="absent", remove_storage=True),
             lv_step("volume gone", "libvirt_volume", pool="default-pool", name="vm1.qcow2", state="absent"),
             dom("absent again", state="absent", remove_storage=True)]
    ends = by_name(run(lv, steps))
    absent = ends["absent"]
    assert absent["status"] == "changed"
    assert absent["msg"] == "domain vm1: powered off, undefined, volumes deleted (/default-pool/vm1.qcow2)"
    assert absent["data"] == {"name": "vm1", "state": "absent", "exists": False,
                              "volumes_deleted": ["/default-pool/vm1.qcow2"],
                              "changes": ["powered off", "undefined", "volumes deleted (/default-pool/vm1.qcow2)"]}
    assert ends["volume gone"]["status"] == "ok"
    assert ends["absent again"]["status"] == "ok" and ends["absent again"]["msg"] == "domain vm1 is absent"


def test_check_mode_reports_and_changes_nothing(lv: Executor, tmp_path: Path) -> None:
    new, start = run(lv, [dom("new", xml=domain_xml(), state="running", autostart=True),
                          dom("start", state="running")], check=True).ends
    assert new["status"] == "changed"
    # The domain is only defined in check mode's imagination: the next step can't be checked.
    assert (start["status"], start["msg"]) == (
        "skipped", "domain vm1 is not defined yet (check mode: earlier steps did not really run)")
    assert new["msg"] == "domain vm1 (check mode) would be: defined, autostart on, started"
    assert new["data"]["exists"] is False
    # On an existing domain: every step is reported, and the next step still sees it unchanged.
    uri = node_file(tmp_path, domain_xml(dtype="test"))
    steps = [dom("bigger", uri=uri, xml=domain_xml(memory_mib=512), state="running"),
             dom("unchanged", uri=uri, xml=domain_xml(), state="running"),
             dom("gone", uri=uri, state="absent"),
             dom("still there", uri=uri, state="running")]
    ends = by_name(run(lv, steps, check=True))
    assert ends["bigger"]["msg"] == ("domain vm1 (check mode) would be: redefined (memory 262144 -> "
                                     "524288 KiB, currentMemory 262144 -> 524288 KiB) (takes effect at "
                                     "the next start)")
    assert ends["unchanged"]["status"] == "ok" and ends["unchanged"]["data"]["memory"] == 256 << 20
    assert ends["gone"]["msg"] == "domain vm1 (check mode) would be: powered off, undefined"
    assert ends["still there"]["status"] == "ok" and ends["still there"]["data"]["state"] == "running"


def test_diff_shows_libvirt_definition_before_and_after(lv: Executor) -> None:
    out = run(lv, [dom("v1", xml=domain_xml()), dom("v2", xml=domain_xml(vcpus=3))], diff=True)
    diff = out.ends[1]["diff"]
    assert "-  <vcpu placement='static'>1</vcpu>" in diff and "+  <vcpu placement='static'>3</vcpu>" in diff


def test_name_mismatch_missing_domain_and_bad_xml(lv: Executor) -> None:
    ends = by_name(run(lv, [
        {**dom("other name", xml=domain_xml(name="vm2")), "ignore_errors": True},
        {**dom("not defined", state="running"), "ignore_errors": True},
    ]))
    assert ends["other name"]["msg"] == "the xml defines domain 'vm2', but the step's name is 'vm1'"
    assert ends["not defined"]["msg"] == "domain vm1 is not defined, and the step gives no xml to define it"
    bad = lv.run({"protocol": 1, "id": "x", "steps": [dom("bad", xml="<domain><name>vm1</name>")]})
    assert bad.rc == 2 and bad.one("error")["field"] == "args.xml"
    assert "not well-formed XML" in bad.one("error")["message"]
    wrong = lv.run({"protocol": 1, "id": "x", "steps": [dom("reboot", state="shutoff", reboot=True)]})
    assert wrong.rc == 2 and wrong.one("error")["field"] == "args.reboot"


def test_libvirt_errors_carry_code_and_message(lv: Executor, tmp_path: Path) -> None:
    no_os = "<domain type='test'><name>vm1</name><memory>1024</memory></domain>"
    ends = by_name(run(lv, [
        {**dom("invalid", xml=no_os), "ignore_errors": True},
        {**dom("no such uri", uri=f"test://{tmp_path}/missing.xml", state="running"), "ignore_errors": True},
    ]))
    invalid = ends["invalid"]
    assert invalid["status"] == "failed"
    assert invalid["msg"] == ("libvirt error 27 (VIR_ERR_XML_ERROR): XML error: an os <type> must be "
                              "specified (while defining domain vm1)")
    assert invalid["data"]["libvirt_error"]["code"] == 27
    assert invalid["data"]["libvirt_error"]["name"] == "VIR_ERR_XML_ERROR"
    uri = ends["no such uri"]
    assert uri["msg"].startswith("libvirt error ") and f"(while connecting to test://{tmp_path}/missing.xml)" in uri["msg"]


def test_default_uri_comes_from_libvirt_default_uri(tmp_path: Path) -> None:
    lv = Executor(tmp_path / "cache", python=SYSTEM_PYTHON, extra_env={"LIBVIRT_DEFAULT_URI": TEST_URI})
    out = run(lv, [{"name": "test", "action": "libvirt_domain", "args": {"name": "test", "state": "running"}}])
    assert out.one("step_end")["status"] == "ok"  # the test driver's own running domain
