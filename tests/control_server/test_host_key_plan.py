"""ssh_config's host-key options, and who wins: command line, inventory ssh args, ssh_config."""

from __future__ import annotations

import time
from pathlib import Path

from control_server.transport import known_hosts as kh
from control_server.transport import ssh_config
from control_server.transport.base import TransportSettings
from control_server.transport.ssh_options import (
    HostSSHOptions,
    host_key_plan,
    host_ssh_options,
    off_warnings,
)

CONFIG = """\
Include {root}/conf.d/*.conf

Host node05
  HostName 127.0.1.5
  Port 2298
  UserKnownHostsFile {root}/kh1 "{root}/kh 2"
  ProxyJump jump01

Host node06
  HostName %h.lab
  HostKeyAlias node06-key
  StrictHostKeyChecking no
  GlobalKnownHostsFile /dev/null

Host *.lab !bad.lab
  StrictHostKeyChecking accept-new

Match host 127.0.1.*
  Port 9999
  StrictHostKeyChecking yes
  Include {root}/conf.d/*.conf

Host *
  UserKnownHostsFile {root}/default_kh
"""


def _config(tmp_path: Path) -> str:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "a.conf").write_text("Host included\n  HostName 10.9.9.9\n")
    path = tmp_path / "ssh_config"
    path.write_text(CONFIG.format(root=tmp_path))
    return str(path)


def test_alias_resolves_hostname_port_files_and_jump(tmp_path: Path) -> None:
    cfg = ssh_config.resolve(_config(tmp_path), "node05")
    assert (cfg.hostname, cfg.port) == ("127.0.1.5", 2298)  # first value wins over Match
    assert cfg.user_known_hosts == (f"{tmp_path}/kh1", f"{tmp_path}/kh 2")
    assert cfg.proxy_jump == "jump01"
    assert cfg.strict == "yes"  # from the Match on the HostName


def test_token_alias_strict_and_patterns(tmp_path: Path) -> None:
    path = _config(tmp_path)
    cfg = ssh_config.resolve(path, "node06")
    assert cfg.hostname == "node06.lab" and cfg.host_key_alias == "node06-key"
    assert cfg.strict == "no" and cfg.global_known_hosts == ("/dev/null",)
    assert ssh_config.resolve(path, "good.lab").strict == "accept-new"
    assert ssh_config.resolve(path, "bad.lab").strict is None
    assert ssh_config.resolve(path, "included").hostname == "10.9.9.9"
    assert ssh_config.resolve(path, "other").user_known_hosts == (f"{tmp_path}/default_kh",)
    assert ssh_config.resolve(None, "x").hostname == "x"


def test_plan_for_an_alias_looks_up_hostname_and_port(tmp_path: Path) -> None:
    settings = TransportSettings(ssh_config=Path(_config(tmp_path)))
    plan = host_key_plan("node05", None, None, HostSSHOptions(), settings)
    assert plan.name() == "[127.0.1.5]:2298"
    assert plan.user_files == (f"{tmp_path}/kh1", f"{tmp_path}/kh 2")
    assert plan.learn_file == f"{tmp_path}/kh1"
    assert (plan.policy, plan.source) == ("strict", "ssh_config")
    alias = host_key_plan("node06", None, None, HostSSHOptions(), settings)
    assert alias.name() == "node06-key" and alias.files[-1] == "/dev/null"


def test_command_line_wins_over_inventory_wins_over_ssh_config(tmp_path: Path) -> None:
    config = Path(_config(tmp_path))
    inventory_off = host_ssh_options(
        {"ansible_ssh_common_args": "-o StrictHostKeyChecking=no "
                                    "-o 'UserKnownHostsFile=/inv/a /inv/b'"})
    cli = TransportSettings(ssh_config=config, host_key_checking="strict",
                            known_hosts=Path("/cli/known_hosts"))
    plan = host_key_plan("node05", None, None, inventory_off, cli)
    assert (plan.policy, plan.source) == ("strict", "cli")
    assert plan.user_files == ("/cli/known_hosts",)
    not_given = TransportSettings(ssh_config=config)
    plan = host_key_plan("node05", None, None, inventory_off, not_given)
    assert (plan.policy, plan.source) == ("off", "inventory")
    assert plan.user_files == ("/inv/a", "/inv/b")
    plan = host_key_plan("node06", None, None, HostSSHOptions(), not_given)
    assert (plan.policy, plan.source) == ("off", "ssh_config")
    assert host_key_plan("zz", None, None, HostSSHOptions(),
                         TransportSettings(ssh_config=tmp_path / "none")).policy == "strict"


def test_inventory_alias_and_global_files(tmp_path: Path) -> None:
    opts = host_ssh_options({"ansible_ssh_extra_args":
                             "-o HostKeyAlias=hv01 -o GlobalKnownHostsFile=/g1"})
    plan = host_key_plan("10.0.0.1", 2222, None, opts,
                         TransportSettings(ssh_config=tmp_path / "none"))
    assert plan.name() == "hv01" and plan.global_files == ("/g1",)


def test_off_warnings_name_source_and_hosts(tmp_path: Path) -> None:
    settings = TransportSettings(ssh_config=Path(_config(tmp_path)))
    off = host_ssh_options({"ansible_ssh_common_args": "-o StrictHostKeyChecking=no"})
    plans = [("a", host_key_plan("a", None, None, off, settings)),
             ("b", host_key_plan("node06", None, None, HostSSHOptions(), settings)),
             ("c", host_key_plan("c", None, None, HostSSHOptions(), settings)), ("d", None)]
    warnings = off_warnings(plans)
    assert len(warnings) == 2
    assert "inventory's ssh args (a)" in warnings[0] and "NOT verified" in warnings[0]
    assert "ssh_config (b)" in warnings[1]
    cli = TransportSettings(host_key_checking="off", ssh_config=tmp_path / "none")
    assert off_warnings([("a", host_key_plan("a", None, None, off, cli))]) == []


def test_a_fleet_of_aliases_stays_linear(tmp_path: Path) -> None:
    """1,000 Host blocks, 1,000 known_hosts lines, 1,000 hosts: each file parsed once, each
    host found through an index, not a scan of every block and line."""
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    addr = [f"10.0.{i // 250}.{i % 250}" for i in range(1000)]
    (tmp_path / "kh").write_text("".join(f"[{a}]:2222 {key}\n" for a in addr))
    config = tmp_path / "config"
    config.write_text("".join(
        f"Host node{i:04d}\n  HostName {a}\n  Port 2222\n  UserKnownHostsFile {tmp_path}/kh\n"
        for i, a in enumerate(addr)) + "Host *\n  User root\n")
    settings = TransportSettings(ssh_config=config)
    ssh_config._parse.cache_clear()
    start = time.perf_counter()
    for i, a in enumerate(addr):
        plan = host_key_plan(f"node{i:04d}", None, None, HostSSHOptions(), settings)
        assert plan.name() == f"[{a}]:2222"
        assert kh.lookup(plan.files, plan.name()).known
    assert time.perf_counter() - start < 3.0
    assert ssh_config._parse.cache_info().misses == 1
