"""known_hosts lookup as OpenSSH does it: names, ports, hashes, markers, several files."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time
from pathlib import Path

from control_server.transport import known_hosts as kh

KEY_A = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
KEY_B = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"


def _hashed(name: str, salt: bytes = b"0123456789abcdefghij") -> str:
    digest = hmac.digest(salt, name.encode(), hashlib.sha1)
    return f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"


def _file(tmp_path: Path, text: str, name: str = "known_hosts") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_lookup_name_is_bare_for_22_bracketed_otherwise_and_alias_verbatim() -> None:
    assert kh.lookup_name("Node05.example", 22) == "node05.example"
    assert kh.lookup_name("127.0.1.5", None) == "127.0.1.5"
    assert kh.lookup_name("127.0.1.5", 2298) == "[127.0.1.5]:2298"
    assert kh.lookup_name("127.0.1.5", 2298, alias="Node05") == "node05"


def test_port_entry_matches_only_its_port(tmp_path: Path) -> None:
    path = _file(tmp_path, f"[127.0.1.5]:2298 {KEY_A}\n127.0.1.5 {KEY_B}\n")
    on_port = kh.lookup([path], "[127.0.1.5]:2298")
    assert [e.key for e in on_port.keys] == [KEY_A.split()[1]]
    assert on_port.keys[0].where == f"{path}:1"
    # unlike asyncssh's own matcher, no fall-back from [host]:port to the bare host
    assert not kh.lookup([path], "[127.0.1.5]:2299").known
    assert kh.lookup([path], "127.0.1.5").keys[0].line == 2


def test_alias_is_not_the_hostname(tmp_path: Path) -> None:
    path = _file(tmp_path, f"node05 {KEY_A}\n")
    assert kh.lookup([path], "node05").known
    assert not kh.lookup([path], "[127.0.1.5]:2298").known


def test_hashed_entries_match_by_hmac(tmp_path: Path) -> None:
    path = _file(tmp_path, f"# comment\n\n{_hashed('[10.0.0.7]:2222')} {KEY_A}\n")
    found = kh.lookup([path], "[10.0.0.7]:2222")
    assert found.known and found.keys[0].line == 3
    assert not kh.lookup([path], "10.0.0.7").known


def test_comma_lists_wildcards_negation_and_literal_brackets(tmp_path: Path) -> None:
    path = _file(tmp_path, (
        f"a.example,B.example {KEY_A}\n"
        f"*.lab,!bad.lab {KEY_B}\n"
        f"[10.1.?.*]:2222 {KEY_A}\n"
    ))
    assert kh.lookup([path], "b.example").known
    assert kh.lookup([path], "good.lab").known
    assert not kh.lookup([path], "bad.lab").known
    assert kh.lookup([path], "[10.1.2.33]:2222").keys[0].line == 3
    assert not kh.lookup([path], "10.1.2.33").known  # '[' is no character class


def test_markers_sort_keys_cas_and_revoked(tmp_path: Path) -> None:
    path = _file(tmp_path, (
        f"@cert-authority *.lab {KEY_A}\n"
        f"@revoked * {KEY_B}\n"
        f"@bogus host.lab {KEY_B}\n"
        "host.lab broken\n"
    ))
    found = kh.lookup([path], "host.lab")
    assert [e.marker for e in found.cas] == ["cert-authority"] and not found.keys
    assert found.known  # a CA entry counts: accept-new adds nothing for this host
    entry = found.revoked_entry(KEY_B)
    assert entry is not None and entry.where == f"{path}:2"


def test_several_files_user_first_then_global(tmp_path: Path) -> None:
    user = _file(tmp_path, f"other {KEY_A}\n", "user")
    user2 = _file(tmp_path, f"[h]:2 {KEY_A}\n", "user2")
    global_ = _file(tmp_path, f"[h]:2 {KEY_B}\n", "global")
    found = kh.lookup([user, str(tmp_path / "missing"), user2, global_], "[h]:2")
    assert [e.where for e in found.keys] == [f"{user2}:1", f"{global_}:1"]
    message = kh.mismatch_message(found, KEY_B)
    assert f"{user2}:1" in message and "host key mismatch" in message
    assert "SHA256:" in message


def test_unknown_message_names_the_files(tmp_path: Path) -> None:
    path = _file(tmp_path, "")
    message = kh.unknown_message(kh.lookup([path], "[h]:2"))
    assert message.startswith("host key unknown: [h]:2 is not in") and path in message


def test_append_writes_the_port_form(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "known_hosts"
    kh.append(str(path), kh.lookup_name("127.0.0.9", 2200), KEY_A)
    assert path.read_text() == f"[127.0.0.9]:2200 {KEY_A}\n"
    assert kh.lookup([str(path)], "[127.0.0.9]:2200").known


def test_parsed_once_per_file_version_and_linear(tmp_path: Path) -> None:
    lines = "".join(f"[10.0.{i // 250}.{i % 250}]:2222 {KEY_A}\n" for i in range(1000))
    path = _file(tmp_path, lines + f"*.lab {KEY_B}\n")
    kh._parse_file.cache_clear()
    start = time.perf_counter()
    for i in range(1000):
        assert kh.lookup([path], f"[10.0.{i // 250}.{i % 250}]:2222").known
    elapsed = time.perf_counter() - start
    assert kh._parse_file.cache_info().misses == 1
    assert elapsed < 2.0, elapsed  # indexed: ~1000 dict hits, not 1000 x 1000 scans
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    kh.lookup([path], "x")
    assert kh._parse_file.cache_info().misses == 2  # a new version is read again


def test_append_skips_a_name_learned_meanwhile_and_reports_a_clash(tmp_path: Path) -> None:
    path = str(tmp_path / "known_hosts")
    assert kh.append(path, "[h]:2", KEY_A) is None
    assert kh.append(path, "[h]:2", KEY_A) is None  # a second host behind the same sshd
    assert Path(path).read_text() == f"[h]:2 {KEY_A}\n"
    clash = kh.append(path, "[h]:2", KEY_B)
    assert clash is not None and clash.keys[0].where == f"{path}:1"
    assert Path(path).read_text() == f"[h]:2 {KEY_A}\n"
