"""Random inventories (INI, YAML, vars files, several sources) and host patterns.

Used two ways: seeded cases for the differential tests (ansible must agree, including on
which inventories are errors), and raw text for the property tests.
"""

from __future__ import annotations

import json
import random
from typing import Any

import yaml
from inv_cases import Case, Pattern

GROUPS = ["web", "db", "kvm", "rack1", "rack2", "prod", "edge", "g-x", "h1", "empty"]
HOSTS = ["h1", "h2", "h3", "h4", "web", "localhost", "127.0.0.1", "10.0.0.1", "db01.lab"]
HOST_ENTRIES = [*HOSTS, "n[1:3]", "k[01:03]", "r[a:c]", "h5:2201", "s[0:4:2]", "p[1:2]-[x:y]"]
VAR_NAMES = ["a", "b", "port", "ansible_port", "ansible_host", "ansible_user", "env", "cfg"]
INI_VALUES = [
    "1", "-2", "1.5", "True", "False", "yes", "None", "'07'", '"x y"', "[1, 2]",
    "\"{'k': 1}\"", "hello", "a=b", "0x10", "''", "1e3", "(1,2)", "...", "/srv/x",
]  # fmt: skip


def _value(rng: random.Random, depth: int = 0) -> Any:
    kinds = ["int", "str", "bool", "none", "float"] + (["list", "dict"] if depth < 2 else [])
    kind = rng.choice(kinds)
    if kind == "int":
        return rng.randint(-5, 3000)
    if kind == "str":
        return rng.choice(["x", "hello world", "07", "yes", "", "{{ x }}", "é"])
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "none":
        return None
    if kind == "float":
        return rng.choice([1.5, -0.25, 1e3])
    if kind == "list":
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(VAR_NAMES): _value(rng, depth + 1) for _ in range(rng.randint(0, 3))}


def _vars(rng: random.Random, count: int = 3) -> dict[str, Any]:
    return {rng.choice(VAR_NAMES): _value(rng) for _ in range(rng.randint(0, count))}


def random_ini(rng: random.Random, defined: list[str]) -> str:
    lines: list[str] = []
    if rng.random() < 0.3:
        lines.append(rng.choice(HOSTS))
    for _ in range(rng.randint(1, 7)):
        group = rng.choice([*GROUPS, "all", "ungrouped"])
        kind = rng.choice(["", "", ":vars", ":children"])
        if kind == ":children" or (kind == ":vars" and rng.random() < 0.95):
            # Keep most files valid: define the group first.
            lines.append(f"[{group}]")
            defined.append(group)
        elif kind == "":
            defined.append(group)
        lines.append(f"[{group}{kind}]")
        for _ in range(rng.randint(0, 4)):
            lines.append(_ini_line(rng, kind, group, defined))
        if rng.random() < 0.2:
            lines.append(rng.choice(["# comment", "; comment", ""]))
    return "\n".join(lines) + "\n"


def _ini_line(rng: random.Random, kind: str, group: str, defined: list[str]) -> str:
    if kind == ":vars":
        name = rng.choice([*VAR_NAMES, "ansible_group_priority"])
        if name == "ansible_group_priority":
            return f"{name}={rng.randint(0, 20)}"
        return f"{name}={rng.choice(INI_VALUES)}"
    if kind == ":children":
        children = [g for g in defined if g not in (group, "all")]
        return rng.choice(children) if children and rng.random() < 0.97 else rng.choice(GROUPS)
    entry = rng.choice(HOST_ENTRIES)
    values = [v.replace(", ", ",") for v in INI_VALUES]  # a space would split the token
    pairs = [f"{rng.choice(VAR_NAMES)}={rng.choice(values)}" for _ in range(rng.randint(0, 3))]
    return " ".join([entry, *pairs])


def random_yaml_data(
    rng: random.Random, depth: int = 0, parent: str | None = None
) -> dict[str, Any]:
    names = [*GROUPS, "all", "ungrouped"] if parent is None else [*GROUPS, "ungrouped"]
    data: dict[str, Any] = {}
    for _ in range(rng.randint(1, 4 if depth == 0 else 3)):
        name = rng.choice([n for n in names if n != parent])
        data[name] = _yaml_group(rng, depth, name)
    return data


def _yaml_group(rng: random.Random, depth: int, name: str) -> Any:
    if rng.random() < 0.15:
        return None
    group: dict[str, Any] = {}
    sections = ["hosts", "vars", "children"]
    rng.shuffle(sections)
    for section in sections:
        if rng.random() < 0.4:
            continue
        if section == "hosts":
            hosts = {
                rng.choice(HOST_ENTRIES): (_vars(rng) or None) for _ in range(rng.randint(0, 3))
            }
            group["hosts"] = rng.choice(HOSTS) if rng.random() < 0.1 else hosts
        elif section == "vars":
            group["vars"] = _vars(rng)
            if rng.random() < 0.15:
                group["vars"]["ansible_group_priority"] = rng.randint(0, 9)
        elif depth < 2:
            group["children"] = random_yaml_data(rng, depth + 1, name)
    return group


def random_vars_files(rng: random.Random, prefix: str, used: set[str]) -> dict[str, str]:
    files: dict[str, str] = {}
    for kind, names in (("group_vars", [*GROUPS, "all"]), ("host_vars", HOSTS)):
        for name in rng.sample(names, rng.randint(0, 3)):
            if f"{prefix}{kind}/{name}" in used:
                continue
            used.add(f"{prefix}{kind}/{name}")
            form = rng.choice(["", ".yml", ".yaml", ".json", "/"])
            data = _vars(rng, 4)
            if form == "/":
                for index in range(rng.randint(1, 2)):
                    files[f"{prefix}{kind}/{name}/{index}.yml"] = yaml.safe_dump(data)
            elif form == ".json":
                files[f"{prefix}{kind}/{name}.json"] = json.dumps(data)
            else:
                files[f"{prefix}{kind}/{name}{form}"] = yaml.safe_dump(data)
    return files


def random_patterns(rng: random.Random, count: int = 6) -> tuple[Pattern, ...]:
    names = GROUPS + HOSTS + ["all", "ungrouped", "n2", "k02"]
    atoms = [*names, "*", "h*", "?1", "~^h[12]", "~k0", "r*", "*[1]", "web[0]", "kvm[1:2]"]
    atoms += ["all[-1]", "db[1:]", "rack*[0:1]"]
    patterns: list[Pattern] = []
    for _ in range(count):
        parts = [rng.choice(atoms)]
        for _ in range(rng.randint(0, 2)):
            parts.append(rng.choice([":", ":&", ":!", ","]) + rng.choice(atoms))
        text = "".join(parts)
        if rng.random() < 0.2:
            patterns.append((text, rng.choice([*names, "!h1", "web:db"])))
        else:
            patterns.append(text)
    return tuple(patterns)


def random_case(seed: int) -> Case:
    rng = random.Random(seed)
    files: dict[str, str] = {}
    sources: list[str] = []
    defined: list[str] = []
    used: set[str] = set()
    layout = rng.choice(["one", "one", "two_dirs", "folder", "with_list"])
    count = 1 if layout in ("one", "with_list") else rng.randint(2, 3)
    for index in range(count):
        folder = {"two_dirs": f"d{index}/", "folder": "inv/"}.get(layout, "")
        if rng.random() < 0.5:
            name = f"{folder}{index}-hosts.ini"
            files[name] = random_ini(rng, defined)
        else:
            name = f"{folder}{index}-hosts.yml"
            files[name] = yaml.safe_dump(random_yaml_data(rng), sort_keys=False)
        if layout != "folder":
            sources.append(name)
        files.update(random_vars_files(rng, folder, used))
    if layout == "folder":
        sources.append("inv")
    if layout == "with_list":
        sources.append("lh1,lh2:2202,h1")
    return Case(
        f"random_{seed}",
        files,
        tuple(sources),
        random_patterns(rng),
        graph_groups=("all",),
    )
