"""Malformed inventories raise InventoryError naming file and line (and ansible refuses them too)."""

from __future__ import annotations

from pathlib import Path

import pytest
from inv_oracle import HAVE_ANSIBLE, Oracle, list_call

from control_server.errors import InventoryError
from control_server.inventory import Inventory

# name -> (files, source, expected line or None, text the message must contain)
BAD: dict[str, tuple[dict[str, str], str, int | None, str]] = {
    "unknown_section_type": (
        {"inv.ini": "[web]\nh1\n[web:hosts2]\nh2\n"},
        "inv.ini", 3, "Section [web:hosts2] has unknown type: hosts2",
    ),
    "section_with_space": (
        {"inv.ini": "[web]\nh1\n\n[web servers]\n"},
        "inv.ini", 4, "Invalid section entry: '[web servers]'",
    ),
    "range_unequal_padding": (
        {"inv.ini": "[kvm]\nkvm[01:5]\n"},
        "inv.ini", 2, "host range must specify equal-length begin and end formats",
    ),
    "range_no_end": (
        {"inv.ini": "# c\n[kvm]\nok1\nkvm[1:]\n"},
        "inv.ini", 4, "host range must specify end value",
    ),
    "range_letters_reversed": (
        {"inv.ini": "[kvm]\nnode[f:a]\n"},
        "inv.ini", 2, "host range must have begin <= end",
    ),
    "range_three_colons": (
        {"inv.ini": "[kvm]\nnode[1:2:3:4]\n"},
        "inv.ini", 2, "host range must be begin:end or begin:end:step",
    ),
    "range_zero_step": (
        {"inv.ini": "[kvm]\nnode[1:4:0]\n"},
        "inv.ini", 2, "invalid host range",
    ),
    "literal_unhashable_key": (
        {"inv.ini": "[g]\nh1 ok=1\nh2 bad={[1]:2}\n"},
        "inv.ini", 3, "cannot evaluate value",
    ),
    "unclosed_quote": (
        {"inv.ini": "[g]\nh1 x=\"abc\n"},
        "inv.ini", 2, "Error parsing host definition",
    ),
    "host_var_without_equals": (
        {"inv.ini": "[g]\nh1 a=1 oops\n"},
        "inv.ini", 2, "Expected key=value host variable assignment, got: oops",
    ),
    "vars_line_without_equals": (
        {"inv.ini": "[g]\nh1\n[g:vars]\na=1\njust_a_word\n"},
        "inv.ini", 5, "Expected key=value, got: just_a_word",
    ),
    "undefined_child": (
        {"inv.ini": "[parent:children]\nchild_ok\nmissing\n[child_ok]\nh1\n"},
        "inv.ini", 3, "Section [parent:children] includes undefined group 'missing'",
    ),
    "vars_for_undefined_group": (
        {"inv.ini": "[g]\nh1\n\n[ghost:vars]\na=1\n"},
        "inv.ini", 4, "Section [ghost:vars] not valid for undefined group 'ghost'",
    ),
    "host_ending_in_colon": (
        {"inv.ini": "[g]\nh1:\n"},
        "inv.ini", 2, "ending in ':' is not allowed",
    ),
    "yaml_document_marker_in_ini": (
        {"inv.ini": "---\nall:\n  hosts:\n    h1:\n"},
        "inv.ini", 1, "'---' is normally a sign this is a YAML file",
    ),
    "child_group_loop": (
        {"inv.ini": "[a:children]\nb\n[b:children]\na\n"},
        "inv.ini", 4, "recursive dependency loop",
    ),
    "group_child_of_itself": (
        {"inv.ini": "[a]\nh1\n[a:children]\na\n"},
        "inv.ini", 4, "can't add group 'a' to itself",
    ),
    "bad_group_priority": (
        {"inv.ini": "[a]\nh1\n[a:vars]\nansible_group_priority=high\n"},
        "inv.ini", 4, "ansible_group_priority",
    ),
    "yaml_hosts_is_a_list": (
        {"inv.yml": "all:\n  children:\n    web:\n      hosts:\n        - h1\n        - h2\n"},
        "inv.yml", 3, 'Invalid "hosts" entry for "web" group',
    ),
    "yaml_syntax_error": (
        {"inv.yml": "all:\n  hosts:\n    h1:\n   bad: [\n"},
        "inv.yml", 4, "invalid YAML",
    ),
    "yaml_host_vars_not_mapping": (
        {"inv.yml": "all:\n  hosts:\n    h1: [1, 2]\n"},
        "inv.yml", 3, "expected dictionary",
    ),
    "yaml_integer_host": (
        {"inv.yml": "all:\n  hosts:\n    42:\n"},
        "inv.yml", 3, "Host pattern 42 must be a string",
    ),
    "yaml_bad_range": (
        {"inv.yml": "web:\n  hosts:\n    ok:\n    web[01:9]:\n"},
        "inv.yml", 4, "equal-length",
    ),
    "group_vars_not_mapping": (
        {"inv.ini": "[g]\nh1\n", "group_vars/g.yml": "- just\n- a list\n"},
        "inv.ini", None, "variables must be a mapping",
    ),
    "group_vars_bad_yaml": (
        {"inv.ini": "[g]\nh1\n", "group_vars/g.yml": "a: 1\nb: [\n"},
        "inv.ini", 3, "invalid YAML",
    ),
    "missing_source": ({}, "nope.ini", None, "inventory source not found"),
}  # fmt: skip

# Where the error is reported, when it is not the source file itself.
ERROR_FILE = {
    "group_vars_not_mapping": "group_vars/g.yml",
    "group_vars_bad_yaml": "group_vars/g.yml",
}


def _write(folder: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.mark.parametrize("name", sorted(BAD))
def test_malformed_inventory_names_file_and_line(tmp_path: Path, name: str) -> None:
    files, source, line, text = BAD[name]
    _write(tmp_path, files)
    with pytest.raises(InventoryError) as info:
        Inventory.load([source], cwd=tmp_path).hosts("all")
    error = info.value
    expected_file = str(tmp_path / ERROR_FILE.get(name, source))
    assert error.file == expected_file, str(error)
    assert error.line == line, str(error)
    assert text in error.reason
    where = f"{expected_file}:{line}: " if line is not None else f"{expected_file}: "
    assert str(error).startswith(where)


@pytest.mark.skipif(not HAVE_ANSIBLE, reason="ansible-core (the oracle) is missing")
def test_ansible_refuses_the_same_inventories(tmp_path: Path) -> None:
    oracle = Oracle(tmp_path / "ansible-home")
    calls = {}
    for name, (files, source, _, _) in BAD.items():
        folder = tmp_path / name
        _write(folder, files)
        folder.mkdir(exist_ok=True)
        calls[name] = list_call([str(folder / source)], folder)
    oracle.run(calls.values())
    accepted = [name for name, call in calls.items() if oracle.result(call).rc == 0]
    assert accepted == []


@pytest.mark.parametrize(
    ("files", "source", "text"),
    [
        ({"inv.toml": "[all]\n"}, "inv.toml", "TOML inventories are not supported"),
        ({"cfg.yml": "plugin: constructed\n"}, "cfg.yml", "plugin: constructed"),
        (
            {"inv.ini": "[g]\nh1\n", "group_vars/g.yml": "$ANSIBLE_VAULT;1.1;AES256\n6162\n"},
            "inv.ini",
            "vault-encrypted vars files are not supported",
        ),
    ],
)
def test_unsupported_sources_are_errors(
    tmp_path: Path, files: dict[str, str], source: str, text: str
) -> None:
    _write(tmp_path, files)
    with pytest.raises(InventoryError, match=text):
        Inventory.load([source], cwd=tmp_path).hosts("all")


def test_executable_script_is_an_error(tmp_path: Path) -> None:
    script = tmp_path / "inv.py"
    script.write_text('#!/usr/bin/env python3\nprint("{}")\n')
    script.chmod(0o755)
    with pytest.raises(InventoryError, match="scripts are not supported") as info:
        Inventory.load([str(script)])
    assert info.value.file == str(script)


def test_executable_ini_without_shebang_is_read(tmp_path: Path) -> None:
    inv = tmp_path / "hosts"
    inv.write_text("[g]\nh1\n")
    inv.chmod(0o755)
    assert [h.name for h in Inventory.load([str(inv)]).hosts("g")] == ["h1"]


@pytest.mark.parametrize(
    ("files", "where"),
    [
        ({"inv.yaml": b"all:\n  hosts:\n    h1:\n# caf\xe9\n"}, ("inv.yaml", 4)),
        ({"inv.json": b'{"all": {"hosts": {"h\xff": {}}}}'}, ("inv.json", 1)),
        ({"inv.ini": b"[g]\nh1\n", "group_vars/g.yml": b"a: 1\nb: \xe9\n"}, ("group_vars/g.yml", 2)),
    ],
)
def test_non_utf8_yaml_names_file_and_line(
    tmp_path: Path, files: dict[str, bytes], where: tuple[str, int]
) -> None:
    for rel, data in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    with pytest.raises(InventoryError) as info:
        Inventory.load([next(iter(files))], cwd=tmp_path).hosts("all")
    assert str(info.value).startswith(f"{tmp_path / where[0]}:{where[1]}: not valid UTF-8")


def test_non_utf8_ini_value_is_kept_as_ansible_keeps_it(tmp_path: Path) -> None:
    (tmp_path / "inv.ini").write_bytes(b"[g]\nh1 v=caf\xe9\n")
    (host,) = Inventory.load(["inv.ini"], cwd=tmp_path).hosts("all")
    assert host.vars["v"] == "caf\udce9"
