"""Inventory sources: files, folders and comma-separated host lists.

A file is tried the way ansible-core's default plugin chain tries it: YAML/JSON when its
extension allows (``.yml``, ``.yaml``, ``.json`` or none) and it holds a mapping, else INI.
A folder is read entry by entry in name order, skipping what ansible skips.  Where ansible
would only warn that a source could not be parsed, hostplane raises InventoryError: running
commands against half an inventory is worse than stopping.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from control_server.errors import InventoryError
from control_server.inventory.addresses import AddressError, parse_address
from control_server.inventory.ini_source import read_ini
from control_server.inventory.model import GraphError, InventoryGraph
from control_server.inventory.values import Document, ValueLoadError, load_document
from control_server.inventory.vars_files import read_text
from control_server.inventory.yaml_source import read_yaml

_YAML_EXTENSIONS = ("", ".yaml", ".yml", ".json")
# ansible's defaults: hidden entries, vars folders, and INVENTORY_IGNORE_EXTS.
_IGNORED_EXTS: tuple[str, ...] = (
    ".pyc",
    ".pyo",
    ".swp",
    ".bak",
    "~",
    ".rpm",
    ".md",
    ".txt",
    ".rst",
    ".orig",
)
_IGNORED_EXTS += (".cfg", ".retry")
IGNORED_ENTRY = re.compile(
    "|".join(
        [r"^\.", "^host_vars$", "^group_vars$", "^vars_plugins$"]
        + [re.escape(ext) + "$" for ext in _IGNORED_EXTS]
    )
)


def is_host_list(source: str, cwd: Path) -> bool:
    return "," in source and not os.path.exists(os.path.join(cwd, source))


def resolve_source(source: str, cwd: Path) -> Path:
    expanded = os.path.expanduser(os.path.expandvars(source))
    return Path(os.path.abspath(os.path.join(cwd, expanded)))


def read_source(graph: InventoryGraph, source: str, cwd: Path) -> None:
    """Add one ``-i`` source to ``graph``."""
    if is_host_list(source, cwd):
        read_host_list(graph, source)
        return
    path = resolve_source(source, cwd)
    if not os.path.exists(path):
        raise InventoryError("inventory source not found", file=str(path))
    read_path(graph, path)


def read_path(graph: InventoryGraph, path: Path) -> None:
    if path.is_dir():
        try:
            entries = sorted(os.listdir(path))
        except OSError as exc:
            raise InventoryError(f"cannot list folder: {exc.strerror}", file=str(path)) from None
        for entry in entries:
            if not IGNORED_ENTRY.search(entry):
                read_path(graph, path / entry)
    else:
        read_file(graph, path)


def read_host_list(graph: InventoryGraph, source: str) -> None:
    for item in source.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            name, port = parse_address(item, allow_ranges=False)
        except AddressError:
            name, port = item, None
        if name not in graph.hosts:
            try:
                graph.add_host(name, group="ungrouped", port=port)
            except GraphError as exc:
                raise InventoryError(f"host list {source!r}: {exc}") from None


def read_file(graph: InventoryGraph, path: Path) -> None:
    name = str(path)
    ext = os.path.splitext(name)[1]
    if ext == ".toml":
        raise InventoryError("TOML inventories are not supported; use INI or YAML", file=name)
    text = read_text(path)
    if _is_script(path, text):
        raise InventoryError(
            "executable inventory scripts are not supported; use INI or YAML", file=name
        )
    yaml_error: InventoryError | None = None
    if ext in _YAML_EXTENSIONS:
        doc, yaml_error = _yaml_candidate(name, text)
        if doc is not None:
            read_yaml(graph, name, doc)
            return
    try:
        read_ini(graph, name, text)
    except InventoryError:
        # A file meant as YAML is better explained by its YAML error than the INI one.
        if yaml_error is not None and ext in (".yml", ".yaml", ".json"):
            raise yaml_error from None
        raise


def _yaml_candidate(name: str, text: str) -> tuple[Document | None, InventoryError | None]:
    """The document if ``text`` is a YAML inventory, else why it is not."""
    try:
        doc = load_document(text)
    except ValueLoadError as exc:
        return None, InventoryError(str(exc), file=name, line=exc.line)
    data = doc.data
    if not data:
        return None, InventoryError("Parsed empty YAML file", file=name)
    if not isinstance(data, dict):
        return None, InventoryError(
            f"YAML inventory has invalid structure, it should be a dictionary, got: "
            f"{type(data).__name__}",
            file=name,
        )
    if data.get("plugin"):
        raise InventoryError(
            f"inventory plugin configuration (plugin: {data['plugin']}) is not supported; "
            "use INI or YAML inventories",
            file=name,
        )
    return doc, None


def _is_script(path: Path, text: str) -> bool:
    # ansible would run it; an executable INI file without '#!' is just an INI file.
    return text.startswith("#!") and os.access(path, os.X_OK)
