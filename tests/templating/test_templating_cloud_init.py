"""launch_instance's cloud-init params: the seed step before the domain, the cdrom in the
domain XML, user_data kept a secret; terminate removes the seed."""

from __future__ import annotations

import json

import pytest
from templating_helpers import HOST

from control_server.errors import ParamError
from control_server.sequence import build_request
from control_server.templating import TemplateLibrary

USER_DATA = "#cloud-config\npassword: not-for-logs-42\n"


def test_no_cloud_init_params_no_seed(shipped: TemplateLibrary) -> None:
    seq = shipped.render("launch_instance", {"name": "vm1"}, HOST)
    assert "cloud_init_seed" not in [s["action"] for s in seq.steps]
    assert "cdrom" not in seq.steps[1]["args"]["xml"]


def test_seed_step_and_cdrom(shipped: TemplateLibrary) -> None:
    net = {"address": "10.0.0.5/24", "gateway": "10.0.0.1", "dns": ["10.0.0.1"]}
    seq = shipped.render("launch_instance", {
        "name": "vm1", "user_data": USER_DATA, "hostname": "web-1", "reseed": "yes",
        "ssh_authorized_keys": ["ssh-ed25519 AAAA me@x"], "network_config": net}, HOST)
    actions = [s["action"] for s in seq.steps]
    assert actions.index("cloud_init_seed") < actions.index("libvirt_domain")
    seed = seq.steps[actions.index("cloud_init_seed")]
    assert seed["args"] == {"name": "vm1", "dir": "/var/lib/hostplane/seeds", "user_data": USER_DATA,
                            "ssh_authorized_keys": ["ssh-ed25519 AAAA me@x"], "hostname": "web-1",
                            "network_config": net, "reseed": True}
    assert seed["undo"] == {"action": "cloud_init_seed",
                            "args": {"name": "vm1", "dir": "/var/lib/hostplane/seeds", "state": "reverted"}}
    xml = seq.steps[actions.index("libvirt_domain")]["args"]["xml"]
    assert "<source file='/var/lib/hostplane/seeds/vm1/cidata.iso'/>" in xml
    assert "device='cdrom'" in xml and "hostplane.seed=cdrom" in xml
    request = build_request(seq, "req-seed")
    assert request["redact"] == [USER_DATA]
    assert "not-for-logs-42" not in json.dumps(seq.redact(request["steps"]))
    assert "not-for-logs-42" not in repr(seq)


def test_a_hostname_alone_makes_a_seed(shipped: TemplateLibrary) -> None:
    seq = shipped.render("launch_instance", {"name": "vm1", "hostname": "h1"}, HOST)
    [seed] = [s for s in seq.steps if s["action"] == "cloud_init_seed"]
    assert seed["args"] == {"name": "vm1", "dir": "/var/lib/hostplane/seeds", "hostname": "h1",
                            "reseed": False}
    with pytest.raises(ParamError, match="hostname"):
        shipped.render("launch_instance", {"name": "vm1", "hostname": "bad_name"}, HOST)


def test_terminate_removes_the_seed(shipped: TemplateLibrary) -> None:
    seq = shipped.render("terminate_instance", {"name": "vm1"}, HOST)
    [seed] = [s for s in seq.steps if s["action"] == "cloud_init_seed"]
    assert seed["args"] == {"name": "vm1", "dir": "/var/lib/hostplane/seeds", "state": "absent"}


def test_wait_for_ip_waits_for_a_lease_unless_the_address_is_static(shipped: TemplateLibrary) -> None:
    seq = shipped.render("launch_instance", {"name": "vm1", "wait_for_ip": "true", "ip_timeout": 30}, HOST)
    last = seq.steps[-1]
    assert last["action"] == "wait" and last["timeout"] == 60
    assert last["args"] == {"domain": "vm1", "address": True, "timeout": 30}
    static = shipped.render("launch_instance", {
        "name": "vm1", "wait_for_ip": "true",
        "network_config": {"address": "10.0.0.5/24"}}, HOST)
    assert not any(s["args"].get("address") is True for s in static.steps)
    dhcp = shipped.render("launch_instance", {"name": "vm1", "wait_for_ip": "true",
                                              "network_config": {"dhcp": True}}, HOST)
    assert dhcp.steps[-1]["args"].get("address") is True
    no_nic = shipped.render("launch_instance", {"name": "vm1", "wait_for_ip": "true", "network": ""}, HOST)
    assert not any(s["args"].get("address") is True for s in no_nic.steps)
