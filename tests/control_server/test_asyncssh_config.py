"""The per-host cut of ssh_config gives asyncssh exactly what the whole file gives."""

from __future__ import annotations

from pathlib import Path

import asyncssh
import pytest

from control_server.transport.asyncssh_config import config_for

CONFIG = """\
# leading options apply to all
ServerAliveInterval 7
Host node01
  HostName 127.0.0.1
  Port 2201
  User alice
  IdentityFile ~/.ssh/id_node01
Host=node02 other
  HostName=127.0.0.2
  Port 2202
Host node03,node04
  HostName %h.example.net
Host web-*
  User www
  Port 2299
Host !node01 *
  ConnectTimeout 3
Match originalhost node05
  User matched
Host NODE06
  Port 2206
Host node07
  Include none-such-*.conf
  Port 2207
Host *
  User fallback
  Port 22
"""


def _resolved(paths: list[str], host: str) -> dict[str, object]:
    config = asyncssh.config.SSHClientConfig.load(
        None, paths, False, False, False, "local", (), host, ())
    return dict(config._options)  # what asyncssh resolved


@pytest.mark.parametrize("host", ["node01", "node02", "other", "node03", "node04", "web-1",
                                  "node05", "node06", "NODE06", "node07", "unknown"])
def test_cut_resolves_as_the_whole_file(tmp_path: Path, host: str) -> None:
    path = tmp_path / "config"
    path.write_text(CONFIG + "".join(f"Host h{i}\n  Port {i}\n" for i in range(200)))
    cut = config_for(path, host)
    assert cut != [str(path)]
    assert Path(cut[0]).stat().st_size < len(CONFIG) + 200
    assert _resolved(cut, host) == _resolved([str(path)], host)


def test_a_bad_line_passes_the_file_whole(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text('Host a\n  User "unclosed\nHost b\n  Port 1\n')
    assert config_for(path, "a") == [str(path)]


def test_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert config_for(None, "a") == []
    assert config_for(tmp_path / "missing", "a") == [str(tmp_path / "missing")]


def test_a_new_version_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text("Host a\n  Port 1\nHost b\n  Port 2\n")
    first = Path(config_for(path, "a")[0]).read_text()
    path.write_text("Host a\n  Port 11\nHost b\n  Port 2\n  User someone\n")
    assert Path(config_for(path, "a")[0]).read_text() != first
    assert _resolved(config_for(path, "a"), "a")["Port"] == 11


def test_preferred_ciphers_only_when_the_user_sets_none(tmp_path: Path) -> None:
    from control_server.transport.asyncssh_config import preferences_file

    path = tmp_path / "config"
    path.write_text("Host mine\n  Ciphers aes256-ctr\nHost other\n  Port 2\n")
    ours = _resolved([*config_for(path, "other"), preferences_file()], "other")
    assert str(ours["Ciphers"]).startswith("aes128-gcm@openssh.com,")
    theirs = _resolved([*config_for(path, "mine"), preferences_file()], "mine")
    assert theirs["Ciphers"] == "aes256-ctr"
    assert _resolved([preferences_file()], "any")["Ciphers"] == ours["Ciphers"]
