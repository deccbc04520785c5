"""``cloud_init_seed``: the files cloud-init reads, the ISO built by the host's real tool,
check mode, a host without a tool, bad arguments, and user-data kept out of every event."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from executor_harness import Executor, request, step

ISOINFO = shutil.which("isoinfo")
needs_iso_tool = pytest.mark.skipif(
    not any(shutil.which(t) for t in ("cloud-localds", "genisoimage", "xorriso", "mkisofs")),
    reason="no ISO tool (Debian: genisoimage)",
)
SECRET_UD = "#cloud-config\npassword: hunter2-very-secret\n"


def _seed(executor: Executor, tmp: Path, check: bool = False, env: Any = None,
          **args: Any) -> dict[str, Any]:
    wire = dict(step("seed", "cloud_init_seed"), args=dict({"dir": str(tmp), "name": "vm1"}, **args))
    return executor.run(request([wire], check=check), env=env).one("step_end")


@needs_iso_tool
def test_the_iso_is_labelled_cidata_and_holds_the_three_files(executor: Executor, tmp_path: Path) -> None:
    end = _seed(executor, tmp_path, user_data=SECRET_UD, hostname="web-1",
                network_config={"dhcp": True})
    assert end["status"] == "changed", end
    iso = tmp_path / "vm1" / "cidata.iso"
    assert end["data"]["path"] == str(iso)
    assert (tmp_path / "vm1" / "user-data").read_text() == SECRET_UD
    assert oct((tmp_path / "vm1" / "user-data").stat().st_mode & 0o777) == "0o600"
    if ISOINFO:
        info = subprocess.run([ISOINFO, "-d", "-i", str(iso)], capture_output=True, text=True).stdout
        assert "Volume id: cidata" in info
        listing = subprocess.run([ISOINFO, "-J", "-f", "-i", str(iso)], capture_output=True,
                                 text=True).stdout.split()
        assert sorted(listing) == ["/meta-data", "/network-config", "/user-data"]
        user_data = subprocess.run([ISOINFO, "-J", "-x", "/user-data", "-i", str(iso)],
                                   capture_output=True, text=True).stdout
        assert user_data == SECRET_UD


@needs_iso_tool
def test_reseed_changes_the_instance_id_and_nothing_else_does(executor: Executor, tmp_path: Path) -> None:
    assert _seed(executor, tmp_path, user_data="#cloud-config\n{}\n")["data"]["instance_id"] == "iid-vm1-1"
    again = _seed(executor, tmp_path, user_data="#cloud-config\n{}\n")
    assert (again["status"], again["data"]["instance_id"]) == ("ok", "iid-vm1-1")
    new = _seed(executor, tmp_path, user_data="#cloud-config\nruncmd: [true]\n")
    assert (new["status"], new["data"]["instance_id"]) == ("changed", "iid-vm1-1")
    assert _seed(executor, tmp_path, user_data="#cloud-config\nruncmd: [true]\n",
                 reseed=True)["data"]["instance_id"] == "iid-vm1-2"
    meta = (tmp_path / "vm1" / "meta-data").read_text()
    assert 'instance-id: "iid-vm1-2"' in meta


@needs_iso_tool
def test_a_lost_iso_is_rebuilt(executor: Executor, tmp_path: Path) -> None:
    _seed(executor, tmp_path)
    (tmp_path / "vm1" / "cidata.iso").unlink()
    end = _seed(executor, tmp_path)
    assert end["status"] == "changed" and (tmp_path / "vm1" / "cidata.iso").is_file()


def test_check_mode_writes_nothing(executor: Executor, tmp_path: Path) -> None:
    end = _seed(executor, tmp_path, check=True, user_data=SECRET_UD)
    assert end["status"] in ("changed", "failed")  # failed only on a host with no ISO tool
    assert not (tmp_path / "vm1").exists()


def test_a_host_without_an_iso_tool_is_told_what_to_install(executor: Executor, tmp_path: Path) -> None:
    end = _seed(executor, tmp_path, env=dict(os.environ, PATH=str(tmp_path / "empty")))
    assert end["status"] == "failed"
    assert "genisoimage" in end["msg"] and "cloud-image-utils" in end["msg"]


def test_user_data_is_in_no_event(executor: Executor, tmp_path: Path) -> None:
    # Even without the control side's redact list (a template marks user_data secret).
    out = executor.run(request([dict(step("seed", "cloud_init_seed"),
                                     args={"dir": str(tmp_path), "name": "vm1", "user_data": SECRET_UD})]))
    assert "hunter2" not in json.dumps(out.events)


def test_static_network_config_is_v2_and_reported(executor: Executor, tmp_path: Path) -> None:
    net = {"address": "192.168.122.50/24", "gateway": "192.168.122.1", "dns": ["192.168.122.1"]}
    end = _seed(executor, tmp_path, check=True, network_config=net)
    assert end["data"].get("address") == "192.168.122.50" or end["status"] == "failed"
    from host_executor.actions.cloud_init import network_config

    text = network_config(net)
    assert "version: 2" in text and 'addresses: ["192.168.122.50/24"]' in text
    assert 'via: "192.168.122.1"' in text and "dhcp4: false" in text


@pytest.mark.parametrize(("args", "field"), [
    ({"network_config": {"address": "10.0.0.5"}}, "network_config"),
    ({"network_config": {"address": "10.0.0.5/24", "dhcp": True}}, "network_config"),
    ({"network_config": {"gateway": "nope"}}, "network_config"),
    ({"network_config": {"mtu": 1500}}, "network_config"),
    ({"hostname": "bad_name!"}, "hostname"),
    ({"ssh_authorized_keys": ["ssh-ed25519 AAAA\nroot"]}, "ssh_authorized_keys"),
    ({"name": "../x"}, "name"),
])
def test_bad_arguments_are_refused_naming_the_field(executor: Executor, tmp_path: Path,
                                                    args: dict[str, Any], field: str) -> None:
    wire = dict(step("seed", "cloud_init_seed"), args=dict({"dir": str(tmp_path), "name": "vm1"}, **args))
    out = executor.run(request([wire]))
    assert out.rc == 2
    assert f"args.{field}" in json.dumps(out.events)


@needs_iso_tool
def test_reverted_restores_the_seed_before_the_change(executor: Executor, tmp_path: Path) -> None:
    first = "#cloud-config\n# one\n"
    _seed(executor, tmp_path, user_data=first)
    iso = (tmp_path / "vm1" / "cidata.iso").read_bytes()
    assert _seed(executor, tmp_path, user_data="#cloud-config\n# two\n")["status"] == "changed"
    assert _seed(executor, tmp_path, state="reverted")["status"] == "changed"
    assert (tmp_path / "vm1" / "user-data").read_text() == first
    assert (tmp_path / "vm1" / "cidata.iso").read_bytes() == iso
    assert not (tmp_path / "vm1" / ".previous").exists()
    assert _seed(executor, tmp_path, user_data=first)["status"] == "ok"


@needs_iso_tool
def test_reverted_removes_a_new_seed(executor: Executor, tmp_path: Path) -> None:
    _seed(executor, tmp_path, user_data="#cloud-config\n{}\n")
    assert _seed(executor, tmp_path, state="reverted")["status"] == "changed"
    assert not (tmp_path / "vm1").exists()
    assert _seed(executor, tmp_path, state="reverted")["status"] == "ok"
