"""quick_find_library answers None without a lookup only when no file could match."""

from __future__ import annotations

import ctypes.util
from pathlib import Path

import pytest

from control_server.transport import libfind


def test_absent_library_answers_none_without_the_real_lookup(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: calls.append(name))
    with libfind.quick_find_library():
        assert ctypes.util.find_library("hostplane-none-such") is None
    assert calls == []


def test_a_library_on_the_path_goes_to_the_real_lookup(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "libhpfake.so.1").write_bytes(b"")
    monkeypatch.setenv("LD_LIBRARY_PATH", str(tmp_path))
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: f"real:{name}")
    with libfind.quick_find_library():
        assert ctypes.util.find_library("hpfake") == "real:hpfake"
    assert ctypes.util.find_library("x") == "real:x"  # restored after the block


def test_ld_so_conf_includes(tmp_path: Path) -> None:
    conf_d = tmp_path / "conf.d"
    conf_d.mkdir()
    (conf_d / "a.conf").write_text("# comment\n/opt/a/lib\n")
    main = tmp_path / "ld.so.conf"
    main.write_text(f"include {conf_d}/*.conf\n/opt/b/lib # trailing\n")
    assert libfind._conf_dirs(str(main)) == ["/opt/a/lib", "/opt/b/lib"]


def test_a_real_system_library_is_still_found() -> None:
    with libfind.quick_find_library():
        assert ctypes.util.find_library("c") is not None
