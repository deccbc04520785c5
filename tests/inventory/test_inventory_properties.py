"""Property tests: no inventory text and no pattern makes anything but our errors escape."""

from __future__ import annotations

import contextlib
import json
import random
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from inv_random import random_ini, random_yaml_data

from control_server.errors import InventoryError, PatternError
from control_server.inventory import Inventory, connection_target

_PUNCT = "[]:=#;'\"{}(),.-_*!&~@ \t\\/|?"
_chars = st.sampled_from(list("abcxyz019" + _PUNCT + "é\u2028\x00"))
_words = st.text(_chars, max_size=12)

_ini_line = st.one_of(
    st.builds(lambda g, k: f"[{g}{k}]", _words, st.sampled_from(["", ":vars", ":children", ":x"])),
    st.builds(lambda h, k, v: f"{h} {k}={v}", _words, _words, _words),
    st.builds(lambda k, v: f"{k}={v}", _words, _words),
    st.sampled_from(["[web]", "[all:vars]", "h[01:03]", "h[a:c]:22", "n[1:9:2]", "# c", "; c"]),
    _words,
)
ini_text = st.lists(_ini_line, max_size=15).map("\n".join)

_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False), _words
)
_yaml_data = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.one_of(_words, st.sampled_from(["hosts", "vars", "children"])), inner, max_size=4
        ),
    ),
    max_leaves=20,
)
yaml_text = st.one_of(
    _yaml_data.map(lambda d: yaml.safe_dump(d, allow_unicode=True)),
    st.text(_chars, max_size=80),
)


def _load_and_use(files: dict[str, str], sources: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for rel, text in files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(text.encode("utf-8", "surrogatepass"))
        try:
            inventory = Inventory.load(sources, cwd=root)
        except InventoryError:
            return
        json.dumps(inventory.to_ansible_list())
        inventory.graph()
        for host in inventory.hosts("all"):
            with contextlib.suppress(InventoryError):
                connection_target(host)


_settings = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_settings
@given(text=ini_text, name=st.sampled_from(["inv.ini", "hosts", "inv.yml"]))
def test_random_ini_text_only_raises_inventory_error(text: str, name: str) -> None:
    _load_and_use({name: text}, [name])


@_settings
@given(text=yaml_text, name=st.sampled_from(["inv.yml", "inv.json", "hosts"]))
def test_random_yaml_text_only_raises_inventory_error(text: str, name: str) -> None:
    _load_and_use({name: text}, [name])


@_settings
@given(
    inventory=yaml_text,
    group_vars=yaml_text,
    host_vars=st.text(_chars, max_size=40),
)
def test_random_vars_files_only_raise_inventory_error(
    inventory: str, group_vars: str, host_vars: str
) -> None:
    files = {
        "inv/hosts.ini": "[web]\nh1\nh2 a=1\n",
        "inv/other.yml": inventory,
        "inv/group_vars/web.yml": group_vars,
        "inv/host_vars/h1": host_vars,
    }
    _load_and_use(files, ["inv"])


@_settings
@given(seed=st.integers(0, 10_000))
def test_generated_inventories_only_raise_inventory_error(seed: int) -> None:
    rng = random.Random(seed)
    files = {
        "a.ini": random_ini(rng, []),
        "b.yml": yaml.safe_dump(random_yaml_data(rng)),
    }
    _load_and_use(files, ["a.ini", "b.yml", "x,y:2,"])


_pattern_atoms = st.sampled_from([*list("webdbhk*?[]:!&,~^$.()0123-@ \\"), "web", "db", "all"])
_patterns = st.lists(_pattern_atoms, max_size=12).map("".join)


@settings(max_examples=200, deadline=None)
@given(pattern=_patterns, limit=st.none() | _patterns)
def test_random_patterns_only_raise_pattern_error(pattern: str, limit: str | None) -> None:
    inventory = _pattern_inventory()
    try:
        hosts = inventory.hosts(pattern, limit=limit)
    except PatternError:
        return
    assert len({h.name for h in hosts}) == len(hosts)


_INVENTORY: list[Inventory] = []


def _pattern_inventory() -> Inventory:
    if not _INVENTORY:
        _INVENTORY.append(Inventory.load(["web1,web2,db1,h[1:2],localhost,"]))
    return _INVENTORY[0]
