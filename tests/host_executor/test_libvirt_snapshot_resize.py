"""libvirt_snapshot and libvirt_resize on libvirt's test driver: snapshots idempotent by
name, revert, delete, list, check mode; resize of memory and vCPUs keeping UUID and MACs,
live within the maxima or pending for the next boot; a disk never shrunk."""

from __future__ import annotations

from pathlib import Path

import pytest
from executor_harness import Executor
from libvirt_harness import SYSTEM_PYTHON, by_name, domain_xml, lv_step, needs_libvirt, run

pytestmark = needs_libvirt


@pytest.fixture
def lv(tmp_path: Path) -> Executor:
    return Executor(tmp_path / "cache", python=SYSTEM_PYTHON)


def snap(title: str, /, **args: object) -> dict[str, object]:
    args.setdefault("domain", "vm1")
    return lv_step(title, "libvirt_snapshot", **args)


def resize(title: str, /, **args: object) -> dict[str, object]:
    args.setdefault("name", "vm1")
    return lv_step(title, "libvirt_resize", **args)


def define(state: str = "defined", **kw: object) -> dict[str, object]:
    return lv_step("define", "libvirt_domain", name="vm1", xml=domain_xml(**kw), state=state)  # type: ignore[arg-type]


def test_snapshot_is_idempotent_by_name_and_reverts(lv: Executor) -> None:
    out = run(lv, [define(), snap("take", name="s1", description="before upgrade"),
                   snap("again", name="s1"), lv_step("start", "libvirt_domain", name="vm1", state="running"),
                   snap("running", name="s2"), snap("list", state="list"),
                   snap("revert", name="s1", state="reverted"),
                   lv_step("after", "libvirt_domain", name="vm1")])
    ends = by_name(out)
    assert out.rc == 0
    assert ends["take"]["status"] == "changed"
    assert ends["take"]["msg"] == "snapshot s1 of domain vm1: taken, of the disks (the domain is shut off)"
    assert ends["take"]["data"]["snapshot"]["description"] == "before upgrade"
    assert ends["again"]["status"] == "ok" and ends["again"]["msg"] == "snapshot s1 of domain vm1 exists"
    assert ends["running"]["msg"].endswith("taken, with memory state (the domain is running)")
    assert ends["running"]["data"]["snapshot"]["memory"] is True
    listed = ends["list"]["data"]["snapshots"]
    assert [(s["name"], s["state"]) for s in listed] == [("s1", "shutoff"), ("s2", "running")]
    assert listed[1]["parent"] == "s1" and listed[1]["current"]
    assert ends["revert"]["status"] == "changed"
    assert ends["revert"]["msg"] == "snapshot s1 of domain vm1: reverted to (the domain ends shutoff)"
    assert ends["after"]["data"]["state"] == "shutoff"
    assert ends["after"]["data"]["uuid"] == ends["take"]["data"]["uuid"]


def test_snapshot_delete_missing_revert_and_check_mode(lv: Executor) -> None:
    out = run(lv, [define(), snap("take", name="s1"), snap("delete", name="s1", state="absent"),
                   snap("delete again", name="s1", state="absent"),
                   snap("revert missing", name="s1", state="reverted")])
    ends = by_name(out)
    assert ends["delete"]["status"] == "changed" and ends["delete"]["data"]["exists"] is False
    assert ends["delete again"]["status"] == "ok"
    assert ends["delete again"]["msg"] == "snapshot s1 of domain vm1 is absent"
    assert ends["revert missing"]["status"] == "failed"
    assert ends["revert missing"]["msg"] == "domain vm1 has no snapshot s1 (it has: none)"
    checked = run(lv, [snap("take", domain="test", name="s1"), snap("list", domain="test", state="list"),
                       snap("not yet", domain="vm9", name="s1")], check=True)
    ends = by_name(checked)
    assert ends["take"]["msg"] == ("snapshot s1 of domain test (check mode) would be: taken, "
                                   "with memory state (the domain is running)")
    assert ends["list"]["data"]["snapshots"] == []  # nothing was really taken
    assert ends["not yet"]["status"] == "skipped"


def test_snapshot_bad_args_are_refused_before_any_step(lv: Executor) -> None:
    for args, field in (({}, "name"), ({"name": "../x"}, "name"),
                        ({"name": "s1", "force": True}, "force")):
        out = lv.run({"protocol": 1, "id": "bad", "steps": [snap("s", **args)]})
        assert out.rc == 2, out.events
        assert out.events[-1]["event"] == "error" and out.events[-1]["field"].endswith(field)


def test_resize_keeps_uuid_and_macs_and_is_idempotent(lv: Executor) -> None:
    out = run(lv, [define(networks=("default", "other")), resize("grow", memory_mib=512, vcpus=2),
                   resize("again", memory_mib=512, vcpus=2),
                   lv_step("after", "libvirt_domain", name="vm1")])
    ends = by_name(out)
    grow, after = ends["grow"], ends["after"]["data"]
    assert grow["status"] == "changed"
    assert grow["msg"] == "domain vm1: memory 256 -> 512 MiB, vcpus 1 -> 2"
    assert grow["data"]["pending"] == []
    assert ends["again"]["status"] == "ok"
    assert (after["memory"], after["vcpus"]) == (512 << 20, 2)
    first = by_name(run(lv, [define(networks=("default", "other"))]))["define"]["data"]
    assert len(after["macs"]) == 2 and after["uuid"] == grow["data"]["uuid"]
    assert grow["data"]["macs"] == after["macs"] and first["uuid"] != after["uuid"]  # fresh domain per run


def test_resize_running_domain_live_within_maxima_else_pending(lv: Executor) -> None:
    # The test driver's own domain runs with 2 GiB of an 8 GiB maximum and 2 vCPUs.
    out = run(lv, [resize("live", name="test", memory_mib=4096),
                   resize("over", name="test", memory_mib=16384, vcpus=4)])
    ends = by_name(out)
    assert ends["live"]["msg"] == "domain test: memory 2048 -> 4096 MiB, memory 4096 MiB live"
    assert ends["live"]["data"]["memory_mib"] == {"config": 4096, "live": 4096}
    over = ends["over"]
    assert over["status"] == "changed" and over["data"]["pending"] == [
        "memory 16384 MiB at the next boot (above the running domain's maximum of 8192 MiB)",
        "vcpus 4 at the next boot (above the running domain's maximum of 2)"]
    assert over["data"]["memory_mib"] == {"config": 16384, "live": 4096}
    assert over["data"]["vcpus"] == {"config": 4, "live": 2}


def test_resize_disk_never_shrinks(lv: Executor) -> None:
    vol = lv_step("volume", "libvirt_volume", pool="default-pool", name="d.qcow2", capacity="1G",
                  format="qcow2")
    dom = lv_step("define", "libvirt_domain", name="vm1", xml=domain_xml(volume="d.qcow2"))
    probes = [resize("no such disk", disk="vdz", disk_capacity="2G"),
              resize("shrink", disk_capacity="512M")]
    out = run(lv, [vol, dom, resize("same", disk_capacity="1G")]
              + [dict(p, ignore_errors=True) for p in probes])
    ends = by_name(out)
    assert ends["same"]["status"] == "ok" and ends["same"]["data"]["disk"]["capacity"] == 1 << 30
    assert ends["no such disk"]["msg"] == "domain vm1 has no disk vdz (its disks: vda)"
    assert ends["shrink"]["status"] == "failed"
    assert ends["shrink"]["msg"] == ("disk vda of domain vm1 (default-pool/d.qcow2) is 1 GiB: "
                                     "shrinking it to 0.5 GiB is refused (it would lose data)")
    assert ends["shrink"]["data"]["disk"]["requested"] == 512 << 20
