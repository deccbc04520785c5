"""libvirt_network, libvirt_pool and libvirt_volume on libvirt's test driver: lifecycles in
one request, idempotency, check mode, refusals and libvirt's errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from executor_harness import Executor
from libvirt_harness import (
    SYSTEM_PYTHON,
    by_name,
    lv_step,
    needs_libvirt,
    network_xml,
    node_file,
    pool_xml,
    qcow2_image,
    run,
)

pytestmark = needs_libvirt
GIB = 1024 ** 3


@pytest.fixture
def lv(tmp_path: Path) -> Executor:
    return Executor(tmp_path / "cache", python=SYSTEM_PYTHON)


def net(title: str, /, **args: object) -> dict[str, object]:
    args.setdefault("name", "net1")
    return lv_step(title, "libvirt_network", **args)


def pool(title: str, /, **args: object) -> dict[str, object]:
    args.setdefault("name", "p1")
    return lv_step(title, "libvirt_pool", **args)


def vol(title: str, /, **args: object) -> dict[str, object]:
    args.setdefault("pool", "default-pool")
    args.setdefault("name", "v1.qcow2")
    return lv_step(title, "libvirt_volume", **args)


def test_network_lifecycle(lv: Executor) -> None:
    xml = network_xml()
    steps = [net("create", xml=xml, state="active", autostart=True),
             net("again", xml=xml, state="active", autostart=True),
             net("smaller range", xml=network_xml(dhcp_end=200)),
             net("stop", state="inactive"), net("stop again", state="inactive"),
             net("start", xml=xml, state="active"),
             net("absent", state="absent"), net("absent again", state="absent")]
    ends = by_name(run(lv, steps))
    assert ends["create"]["msg"] == "network net1: defined, autostart on, started"
    data = ends["again"]["data"]
    assert ends["again"]["status"] == "ok" and ends["again"]["msg"] == "network net1 is active"
    assert (data["active"], data["autostart"], data["persistent"], data["forward"]) == (True, True, True, "nat")
    assert data["ips"] == [{"address": "192.168.100.1", "netmask": "255.255.255.0",
                            "dhcp": [{"start": "192.168.100.2", "end": "192.168.100.254"}]}]
    assert ends["smaller range"]["msg"] == ("network net1: redefined (ip/dhcp/range/@end 192.168.100.254 "
                                            "-> 192.168.100.200) (takes effect when the network restarts)")
    assert ends["smaller range"]["data"]["restart_needed"] is True
    assert ends["smaller range"]["data"]["uuid"] == data["uuid"]
    assert [ends[n]["status"] for n in ("stop", "stop again", "start", "absent", "absent again")] == [
        "changed", "ok", "changed", "changed", "ok"]
    assert ends["absent"]["msg"] == "network net1: stopped, undefined"
    assert ends["absent again"]["data"] == {"name": "net1", "exists": False, "changes": []}


def test_network_check_mode(lv: Executor) -> None:
    steps = [net("new", xml=network_xml(), autostart=True), net("default gone", name="default", state="absent"),
             net("default still", name="default")]
    ends = by_name(run(lv, steps, check=True))
    assert ends["new"]["msg"] == "network net1 (check mode) would be: defined, autostart on, started"
    assert ends["default gone"]["msg"] == "network default (check mode) would be: stopped, undefined"
    assert ends["default still"]["status"] == "ok"


def test_pool_lifecycle(lv: Executor, tmp_path: Path) -> None:
    xml = pool_xml("p1", str(tmp_path / "images"))
    steps = [pool("create", xml=xml, state="active", autostart=True, build=True),
             pool("again", xml=xml, state="active", autostart=True, build=True),
             pool("stop", state="inactive"), pool("start", xml=xml, state="active", build=True),
             pool("moved", xml=pool_xml("p1", str(tmp_path / "elsewhere"))),
             pool("absent", state="absent"), pool("absent again", state="absent")]
    ends = by_name(run(lv, steps))
    assert ends["create"]["msg"] == "storage pool p1: defined, built, autostart on, started"
    again = ends["again"]
    assert again["status"] == "ok" and again["msg"] == "storage pool p1 is active"
    assert again["data"]["path"] == str(tmp_path / "images") and again["data"]["type"] == "dir"
    assert again["data"]["capacity"] > 0 and again["data"]["available"] > 0
    assert ends["stop"]["msg"] == "storage pool p1: stopped"
    assert ends["start"]["msg"] == "storage pool p1: built, started"
    assert ends["moved"]["msg"].startswith("storage pool p1: redefined (target/path ")
    assert ends["absent"]["msg"] == "storage pool p1: stopped, undefined"
    assert ends["absent again"]["status"] == "ok"


def test_pool_without_xml_must_exist(lv: Executor) -> None:
    ends = by_name(run(lv, [{**pool("missing"), "ignore_errors": True}]))
    assert ends["missing"]["msg"] == "storage pool p1 is not defined, and the step gives no xml to define it"
    bad = lv.run({"protocol": 1, "id": "x", "steps": [pool("bad", xml="<network/>")]})
    assert bad.rc == 2 and "expected a <pool> document, got <network>" in bad.one("error")["message"]


def test_volume_lifecycle(lv: Executor) -> None:
    steps = [vol("create", capacity="1G", format="qcow2"),
             vol("again in bytes", capacity=GIB, format="qcow2"),
             vol("no capacity given", format="qcow2"),
             {**vol("shrink", capacity="512M"), "ignore_errors": True},
             {**vol("grow", capacity="2G"), "ignore_errors": True},
             {**vol("other format", format="raw"), "ignore_errors": True},
             vol("clone", name="v2.raw", clone_from="v1.qcow2", format="raw"),
             vol("delete", state="absent"), vol("delete again", state="absent"),
             vol("no such pool", pool="nope", state="absent")]
    ends = by_name(run(lv, steps))
    create = ends["create"]
    assert create["msg"] == "volume default-pool/v1.qcow2: created (qcow2, 1073741824 bytes)"
    assert create["data"] == {"pool": "default-pool", "name": "v1.qcow2", "exists": True,
                              "path": "/default-pool/v1.qcow2", "format": "qcow2", "capacity": GIB,
                              "allocation": 0, "backing": None, "changes": ["created (qcow2, 1073741824 bytes)"]}
    assert ends["again in bytes"]["status"] == "ok" and ends["no capacity given"]["status"] == "ok"
    assert ends["shrink"]["msg"] == ("volume default-pool/v1.qcow2 is 1073741824 bytes: shrinking it to "
                                     "536870912 bytes is refused (it would lose data)")
    # The test driver cannot resize: libvirt's own error, code and message.
    assert ends["grow"]["msg"] == ("libvirt error 3 (VIR_ERR_NO_SUPPORT): this function is not supported by "
                                   "the connection driver: virStorageVolResize (while resizing volume "
                                   "default-pool/v1.qcow2)")
    assert ends["grow"]["data"]["libvirt_error"]["code"] == 3
    assert ends["other format"]["msg"] == ("volume default-pool/v1.qcow2 exists as qcow2, not raw "
                                           "(delete it to recreate it)")
    assert ends["clone"]["msg"] == ("volume default-pool/v2.raw: created (raw, 1073741824 bytes, clone of "
                                    "/default-pool/v1.qcow2)")
    assert [ends[n]["status"] for n in ("delete", "delete again", "no such pool")] == ["changed", "ok", "ok"]


def test_overlay_is_at_least_its_backing_image(lv: Executor, tmp_path: Path) -> None:
    base = qcow2_image(tmp_path / "base.qcow2", 2 * GIB)
    steps = [vol("overlay", capacity="1G", backing=str(base)),
             vol("again", capacity="1G", backing=str(base)),
             vol("bigger", name="v2.qcow2", capacity="3G", backing=str(base), backing_format="qcow2"),
             {**vol("other backing", backing=str(tmp_path / "other.qcow2")), "ignore_errors": True},
             {**vol("missing backing", name="v3.qcow2", backing=str(tmp_path / "nope.qcow2")),
              "ignore_errors": True}]
    ends = by_name(run(lv, steps))
    overlay = ends["overlay"]
    assert overlay["msg"] == (f"volume default-pool/v1.qcow2: created (qcow2 overlay on {base}, 2147483648 "
                              "bytes) (capacity 1073741824 raised to the backing image size 2147483648)")
    assert overlay["data"]["backing"] == {"path": str(base), "format": "qcow2"}
    assert overlay["data"]["capacity"] == 2 * GIB and overlay["data"]["format"] == "qcow2"
    assert ends["again"]["status"] == "ok"
    assert ends["bigger"]["data"]["capacity"] == 3 * GIB
    assert ends["other backing"]["msg"] == (f"volume default-pool/v1.qcow2 exists with backing image {base}, "
                                            f"not {tmp_path / 'other.qcow2'} (delete it to recreate it)")
    assert ends["missing backing"]["msg"] == f"backing image {tmp_path / 'nope.qcow2'} does not exist"


def test_volume_check_mode_and_argument_errors(lv: Executor) -> None:
    ends = by_name(run(lv, [vol("new", capacity="10G"), vol("still absent", state="absent"),
                            pool("new pool", xml=pool_xml("p1", "/p1")), vol("in new pool", pool="p1", capacity=1),
                            pool("start new pool", state="active", xml=pool_xml("p1", "/p1")),
                            net("new net", xml=network_xml()), net("stop new net", state="inactive")], check=True))
    for name, what in [("in new pool", "storage pool p1 is not defined yet"),
                       ("stop new net", "network net1 is not defined yet")]:
        assert ends[name]["status"] == "skipped" and ends[name]["msg"].startswith(what)
    assert ends["start new pool"]["status"] == "changed"  # with its xml, it says what it would do
    assert ends["new"]["msg"] == "volume default-pool/v1.qcow2 (check mode) would be: created (raw, 10737418240 bytes)"
    assert ends["new"]["data"]["exists"] is False and ends["still absent"]["status"] == "ok"
    for args, field, text in [({"capacity": "12Q"}, "args.capacity", "not a size: '12Q'"),
                              ({"backing": "/b", "clone_from": "x"}, "args.clone_from", "not both"),
                              ({"backing": "rel.qcow2"}, "args.backing", "absolute path")]:
        bad = lv.run({"protocol": 1, "id": "x", "steps": [vol("bad", **args)]})
        assert bad.rc == 2, args
        error = bad.one("error")
        assert error["field"] == field and text in error["message"], error


def test_volume_in_a_pool_that_is_missing_or_inactive(lv: Executor, tmp_path: Path) -> None:
    uri = node_file(tmp_path, "")
    steps = [{**vol("no pool", uri=uri, pool="p1", capacity=1), "ignore_errors": True},
             pool("inactive pool", uri=uri, xml=pool_xml("p1", str(tmp_path)), state="inactive"),
             {**vol("inactive", uri=uri, pool="p1", capacity=1), "ignore_errors": True}]
    ends = by_name(run(lv, steps))
    assert ends["no pool"]["msg"] == "storage pool p1 does not exist (create it first, e.g. with host_prepare)"
    assert ends["inactive"]["msg"] == "storage pool p1 is not active"
