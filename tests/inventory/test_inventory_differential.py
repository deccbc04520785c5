"""Differential tests: hostplane's inventory against ansible-core on the same files.

For every case of ``inv_cases.CASES`` the files are written once, every ansible call the
module needs is run in one batch (see ``inv_oracle``), then each test compares:
``to_ansible_list()`` with ``ansible-inventory --list``, ``graph()`` with ``--graph``,
and ``hosts(pattern, limit)`` with ``ansible PATTERN --list-hosts [--limit]``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from inv_cases import CASES, Case, Pattern
from inv_oracle import HAVE_ANSIBLE, Call, Oracle, graph_call, hosts_call, list_call
from inv_random import random_case

from control_server.errors import InventoryError, PatternError
from control_server.inventory import Inventory
from control_server.inventory.model import GroupNode

pytestmark = pytest.mark.skipif(not HAVE_ANSIBLE, reason="ansible-core (the oracle) is missing")

_MISMATCH = "Could not match supplied host pattern, ignoring: "

# Generated inventories on top of the written ones; some are invalid on purpose (then
# ansible must refuse them too).
RANDOM_CASES = [random_case(seed) for seed in range(20)]
ALL_CASES = CASES + RANDOM_CASES


@dataclass
class World:
    root: Path
    oracle: Oracle

    def case_dir(self, case: Case) -> Path:
        return self.root / "cases" / case.name

    def cwd(self, case: Case) -> Path:
        return self.case_dir(case) if case.cwd_in_case else self.root / "cwd"

    def sources(self, case: Case) -> list[str]:
        if case.cwd_in_case:
            return list(case.sources)
        return [s if "," in s else str(self.case_dir(case) / s) for s in case.sources]

    def load(self, case: Case) -> Inventory:
        cwd = self.cwd(case)
        playbook_dir = cwd if case.cwd_in_case else None
        return Inventory.load(self.sources(case), cwd=cwd, playbook_dir=playbook_dir)

    def calls(self, case: Case) -> list[Call]:
        sources, cwd = self.sources(case), self.cwd(case)
        calls = [list_call(sources, cwd)]
        calls += [list_call(sources, cwd, limit) for limit in case.list_limits]
        calls += [graph_call(sources, cwd, group) for group in case.graph_groups]
        for pattern in case.all_patterns():
            calls.append(hosts_call(sources, cwd, *_split(pattern)))
        return calls


def _split(pattern: Pattern) -> tuple[str, str | None]:
    return (pattern, None) if isinstance(pattern, str) else pattern


def write_case(folder: Path, case: Case) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for rel, text in case.files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    for rel in case.executable:
        os.chmod(folder / rel, 0o755)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("inventory-oracle")
    (root / "cwd").mkdir()
    result = World(root, Oracle(root / "ansible-home"))
    for case in ALL_CASES:
        write_case(result.case_dir(case), case)
    result.oracle.run(call for case in ALL_CASES for call in result.calls(case))
    return result


def test_at_least_25_cases() -> None:
    assert len(CASES) >= 25
    assert len({c.name for c in CASES}) == len(CASES)


def _load_or_skip(world: World, case: Case) -> Inventory:
    """The inventory; skip when ansible refuses it too (the list test checks that)."""
    if world.oracle.result(list_call(world.sources(case), world.cwd(case))).rc != 0:
        pytest.skip("ansible refuses this inventory")
    return world.load(case)


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda c: c.name)
def test_list_matches_ansible_inventory(world: World, case: Case) -> None:
    sources, cwd = world.sources(case), world.cwd(case)
    result = world.oracle.result(list_call(sources, cwd))
    if result.rc != 0:
        with pytest.raises(InventoryError):
            world.load(case)
        return
    inventory = world.load(case)
    assert inventory.to_ansible_list() == result.json()
    for limit in case.list_limits:
        expected = world.oracle.result(list_call(sources, cwd, limit)).json()
        assert inventory.to_ansible_list(limit=limit) == expected, f"--limit {limit}"


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda c: c.name)
def test_graph_matches_ansible_inventory(world: World, case: Case) -> None:
    inventory = _load_or_skip(world, case)
    for group in case.graph_groups:
        result = world.oracle.result(graph_call(world.sources(case), world.cwd(case), group))
        assert result.rc == 0, result.stderr
        assert inventory.graph(group) == result.stdout.rstrip("\n"), f"--graph {group}"


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda c: c.name)
def test_patterns_match_ansible(world: World, case: Case) -> None:
    inventory = _load_or_skip(world, case)
    ambiguous = ambiguous_groups(inventory)
    problems = []
    for pattern in case.all_patterns():
        text, limit = _split(pattern)
        result = world.oracle.result(hosts_call(world.sources(case), world.cwd(case), text, limit))
        expected = result.list_hosts()
        try:
            got = [h.name for h in inventory.hosts(text, limit=limit)]
        except PatternError as exc:
            # ansible refuses too; `ansible` itself turns a bad subscript or regex into
            # "no hosts" (rc 0), hostplane into an error.
            if result.rc != 0 or not expected:
                continue
            got = [f"PatternError: {exc}"]
        if ambiguous and any(c in text for c in "[]"):
            continue  # a subscript picks from an order ansible itself does not fix
        if got != expected and not (ambiguous and sorted(got) == sorted(expected)):
            problems.append(f"{pattern!r}: hostplane {got} != ansible {expected}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda c: c.name)
def test_mismatch_warnings_match_ansible(world: World, case: Case) -> None:
    _load_or_skip(world, case)
    problems = []
    for pattern in case.all_patterns():
        text, limit = _split(pattern)
        inventory = world.load(case)
        try:
            inventory.hosts(text, limit=limit)
        except PatternError:
            continue
        result = world.oracle.result(hosts_call(world.sources(case), world.cwd(case), text, limit))
        expected = {w for w in result.warnings() if w.startswith(_MISMATCH)}
        got = {w for w in inventory.warnings if w.startswith(_MISMATCH)}
        if got != expected:
            problems.append(f"{pattern!r}: hostplane {sorted(got)} != ansible {sorted(expected)}")
    assert not problems, "\n".join(problems)


def ambiguous_groups(inventory: Inventory) -> bool:
    """Whether ansible's own host order for some group depends on object hashes.

    ansible walks a group's descendants level by level, iterating each level as a *set*;
    when two groups of one level both bring new children, the order of their hosts changes
    from run to run.  Such cases are compared as sets.
    """
    graph = inventory._graph
    return any(_walk_is_ambiguous(group) for group in graph.groups.values())


def _walk_is_ambiguous(group: GroupNode) -> bool:
    seen: set[int] = {id(group)} | {id(c) for c in group.children}
    level: list[GroupNode] = [group, *group.children]
    while level:
        contributors = 0
        nxt: list[GroupNode] = []
        for g in level:
            new = [c for c in g.children if id(c) not in seen]
            if new:
                contributors += 1
                nxt.extend(new)
        if contributors > 1:
            return True
        seen.update(id(g) for g in nxt)
        level = nxt
    return False
