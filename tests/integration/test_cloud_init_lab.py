"""cloud-init seeds on a real hypervisor (the libvirt lab, QEMU under TCG): the busybox
guest mounts the cdrom labelled cidata and prints the seed's instance-id, hostname and
user-data marker on its serial console; a rerun is ok, a new user-data with reseed moves
the instance-id on; terminate removes the seed. With wait_for_ip, the launch reports the
guest's DHCP lease."""

from __future__ import annotations

import json
import uuid

import pytest
from test_libvirt_lab import (  # the lab's fixtures and helpers, shared
    assert_ok,
    ends,
    guest,
    lab,
    prepared,
    run,
    ssh,
    terminate,
)

from control_server.lab import Lab

pytestmark = [pytest.mark.lab, pytest.mark.libvirt]
__all__ = ["guest", "lab", "prepared"]  # fixtures, imported for pytest to find
SEEDS = "/var/lib/hostplane/seeds"


def _seed_step(events: list, host: str) -> dict:  # type: ignore[type-arg]
    [step] = [e for e in ends(events, host) if e["action"] == "cloud_init_seed"]
    return step


def test_the_guest_reads_its_seed(prepared: Lab, guest: dict[str, str]) -> None:
    host = prepared.hosts[0].name
    name = f"ci-{uuid.uuid4().hex[:6]}"
    marker = f"HOSTPLANE-SEED-{uuid.uuid4().hex[:8]}"
    evars = {"name": name, "hostname": "web-1", "user_data": f"#cloud-config\n# {marker}\n",
             "network_config": {"dhcp": True}, **guest}
    result, events = run(prepared, host, "launch_instance", dict(evars, wait_for_ip="true"))
    assert_ok(result)
    [lease] = [e for e in ends(events, host) if e["action"] == "wait" and "ip" in e["data"]]
    # The guest's udhcpc lease in the lab network's dnsmasq (create_network 10.213.250.0/24).
    assert lease["data"]["ip"].startswith("10.213.250."), lease
    try:
        # Printed before the ready marker the launch waited for: no second wait needed.
        log = ssh(prepared, host, f"cat /var/log/libvirt/qemu/{name}.serial.log")
        assert f"hostplane-guest: seed instance-id iid-{name}-1" in log, log[-2000:]
        assert "hostplane-guest: seed local-hostname web-1" in log
        assert f"hostplane-guest: seed user-data: # {marker}" in log
        assert marker not in json.dumps([e.event for e in events if hasattr(e, "event")])
        again, events = run(prepared, host, "launch_instance", evars)
        assert_ok(again)
        assert _seed_step(events, host)["status"] == "ok"
        newer = dict(evars, user_data=f"#cloud-config\n# {marker}-2\n", reseed="true")
        changed, events = run(prepared, host, "launch_instance", newer)
        assert_ok(changed)
        step = _seed_step(events, host)
        assert step["status"] == "changed" and step["data"]["instance_id"] == f"iid-{name}-2"
        meta = ssh(prepared, host, f"cat {SEEDS}/{name}/meta-data")
        assert f'instance-id: "iid-{name}-2"' in meta
    finally:
        terminate(prepared, name, host)
    assert ssh(prepared, host, f"test -e {SEEDS}/{name} && echo left || echo gone").strip() == "gone"
