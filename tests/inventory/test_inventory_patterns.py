"""Unit tests of host patterns, limits, ranges and host-list sources (no ansible needed)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from control_server.errors import PatternError
from control_server.inventory import Inventory
from control_server.inventory.addresses import AddressError, parse_address
from control_server.inventory.patterns import split_host_pattern
from control_server.inventory.ranges import RangeError, expand_hostname_range, expand_hostpattern

INVENTORY = """\
[kvm]
kvm[01:06]
[rack1]
kvm[01:03]
[rack2]
kvm[04:06]
[gpu]
kvm02
kvm05
[maint]
kvm05
[edge]
edge1 ansible_host=192.0.2.1
"""


@pytest.fixture
def inv(tmp_path: Path) -> Inventory:
    (tmp_path / "hosts.ini").write_text(INVENTORY)
    (tmp_path / "limit.txt").write_text("kvm01\nkvm05\n\nedge1\n")
    return Inventory.load(["hosts.ini"], cwd=tmp_path)


def names(inv: Inventory, pattern: str, limit: str | None = None) -> list[str]:
    return [h.name for h in inv.hosts(pattern, limit=limit)]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("rack1:rack2", ["kvm01", "kvm02", "kvm03", "kvm04", "kvm05", "kvm06"]),
        ("rack2,rack1", ["kvm04", "kvm05", "kvm06", "kvm01", "kvm02", "kvm03"]),
        ("kvm:&gpu", ["kvm02", "kvm05"]),
        ("kvm:!rack1", ["kvm04", "kvm05", "kvm06"]),
        ("!maint:gpu", ["kvm02"]),  # exclusions apply last, whatever their position
        ("kvm0[13]*", ["kvm01", "kvm03"]),
        ("kvm0[13]", []),  # as in ansible: read as kvm0 subscripted by [13]
        ("kvm0?:edge*", ["kvm01", "kvm02", "kvm03", "kvm04", "kvm05", "kvm06", "edge1"]),
        ("~kvm0[246]$", ["kvm02", "kvm04", "kvm06"]),
        ("kvm[0]", ["kvm01"]),
        ("kvm[-1]", ["kvm06"]),
        ("kvm[1:3]", ["kvm02", "kvm03", "kvm04"]),
        ("kvm[4:]", ["kvm05", "kvm06"]),
        ("rack*[0]", ["kvm01"]),
        ("edge1:edge1", ["edge1"]),
        ("all:!kvm", ["edge1"]),
        ("&gpu", ["kvm02", "kvm05"]),  # only & or !: applied to 'all'
    ],
)
def test_pattern_selection_and_order(inv: Inventory, pattern: str, expected: list[str]) -> None:
    assert names(inv, pattern) == expected


def test_limit_narrows_any_pattern(inv: Inventory) -> None:
    assert names(inv, "kvm", limit="rack2") == ["kvm04", "kvm05", "kvm06"]
    assert names(inv, "kvm", limit="rack2:!maint") == ["kvm04", "kvm06"]
    assert names(inv, "gpu:edge1", limit="@limit.txt") == ["kvm05", "edge1"]


def test_limit_file_must_exist(inv: Inventory) -> None:
    with pytest.raises(PatternError, match="Unable to find limit file"):
        inv.hosts("all", limit="@missing.txt")


def test_unmatched_pattern_is_a_warning_not_an_error(inv: Inventory) -> None:
    assert names(inv, "kvm01:nosuch") == ["kvm01"]
    assert "Could not match supplied host pattern, ignoring: nosuch" in inv.warnings


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("~(", "Invalid host list pattern"),
        ("kvm[9]", "No hosts matched the subscripted pattern 'kvm[9]'"),
        ("kvm[9:]", "No hosts matched the subscripted pattern 'kvm[9:]'"),
        # ansible reads these as '~' alone (every host) or as globs; hostplane refuses them.
        ("~[", "'[' without ']' at column 2"),
        ("~[unclosed", "'[' without ']' at column 2"),
        ("kvm:rack1]", "']' without '[' at column 10"),
        ("kvm[1,edge1", "'[' without ']' in 'kvm[1'"),
        ("kvm]", "']' without '['"),
        ("~kvm(0", "Invalid host list pattern"),
        ("~kvm0[", "'[' without ']' at column 6"),
        ("kvm[1:2:3]", "bad subscript"),
        ("kvm[-1:]", "bad subscript"),
        ("kvm[:2]", "bad subscript"),
        ("kvm[3:1]", "end before start"),
        ("kvm:!", "empty pattern"),
        ("   ", "empty host pattern"),
        (" , ", "empty host pattern"),
    ],
)
def test_bad_patterns_raise_pattern_error(inv: Inventory, pattern: str, message: str) -> None:
    with pytest.raises(PatternError, match=re.escape(message)):
        inv.hosts(pattern)


def test_implicit_localhost(inv: Inventory) -> None:
    (host,) = inv.hosts("localhost")
    assert host.implicit and host.groups == ()
    assert host.vars["ansible_connection"] == "local"
    assert "localhost" not in [h.name for h in inv.hosts("all")]
    assert names(inv, "localhost", limit="kvm01") == ["localhost"]  # as ansible --list-hosts


def test_host_lookup(inv: Inventory) -> None:
    host = inv.host("kvm05")
    assert host.groups == ("all", "gpu", "kvm", "maint", "rack2")
    assert inv.host("localhost").implicit
    with pytest.raises(PatternError):
        inv.host("nosuch")
    assert inv.group_names() == [
        "all",
        "edge",
        "gpu",
        "kvm",
        "maint",
        "rack1",
        "rack2",
        "ungrouped",
    ]


def test_host_vars_are_read_only(inv: Inventory) -> None:
    host = inv.host("edge1")
    with pytest.raises(TypeError):
        host.vars["ansible_host"] = "x"  # type: ignore[index]
    copy = dict(host.vars)
    copy["x"] = 1
    assert host.vars["ansible_host"] == "192.0.2.1"
    assert {host} == {inv.host("edge1")}


@pytest.mark.parametrize(
    ("pattern", "parts"),
    [
        ("a,b[1], c[2:3] , d", ["a", "b[1]", "c[2:3]", "d"]),
        ("a:b:&c:!d", ["a", "b", "&c", "!d"]),
        ("web[1:3]", ["web[1:3]"]),
        ("db01:2222", ["db01:2222"]),  # a host with a port stays one pattern
        ("2001:db8::1", ["2001:db8::1"]),
        ("a:b[1:2]", ["a", "b[1:2]"]),
    ],
)
def test_split_host_pattern(pattern: str, parts: list[str]) -> None:
    assert split_host_pattern(pattern) == parts


@pytest.mark.parametrize(
    ("text", "expanded"),
    [
        ("db[01:03]", ["db01", "db02", "db03"]),
        ("db[1:3]", ["db1", "db2", "db3"]),
        ("x[a:c]", ["xa", "xb", "xc"]),
        ("x[01:09:4]", ["x01", "x05", "x09"]),
        ("r[1:2]-[a:b]", ["r1-a", "r1-b", "r2-a", "r2-b"]),
        ("n[:2]", ["n0", "n1", "n2"]),
        ("l[y:B]", ["ly", "lz", "lA", "lB"]),
        ("e[3:1]", []),
    ],
)
def test_expand_ranges(text: str, expanded: list[str]) -> None:
    assert expand_hostname_range(text) == expanded


@pytest.mark.parametrize("text", ["a[01:5]", "a[1:]", "a[c:a]", "a[1:2:3:4]", "a[1:2", "a[x:1]"])
def test_bad_ranges(text: str) -> None:
    with pytest.raises(RangeError):
        expand_hostname_range(text)


def test_huge_range_is_refused() -> None:
    with pytest.raises(RangeError, match="more than"):
        expand_hostname_range("h[0:99999999]")


@pytest.mark.parametrize(
    ("text", "result"),
    [
        ("web1:2222", (["web1"], 2222)),
        ("web[1:2]:22", (["web1", "web2"], 22)),
        ("[2001:db8::1]:2222", (["2001:db8::1"], 2222)),
        ("2001:db8::1", (["2001:db8::1"], None)),
        ("10.0.0.[1:2]:22", (["10.0.0.1", "10.0.0.2"], 22)),
        ("bad_:22", (["bad_:22"], None)),  # not an address: kept verbatim, like ansible
    ],
)
def test_expand_hostpattern_ports(text: str, result: tuple[list[str], int | None]) -> None:
    assert expand_hostpattern(text) == result


def test_parse_address_rejects_garbage() -> None:
    with pytest.raises(AddressError):
        parse_address("not an address")
    with pytest.raises(AddressError):
        parse_address("web[1:2]")  # ranges only where allowed


def test_host_list_source() -> None:
    inv = Inventory.load(["h1,h2:2201,"])
    assert names(inv, "all") == ["h1", "h2"]
    assert inv.host("h2").vars == {"ansible_port": 2201}
    assert inv.host("h1").groups == ("all", "ungrouped")
