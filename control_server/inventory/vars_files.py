"""``group_vars/`` and ``host_vars/`` beside inventory sources (ansible's host_group_vars).

For an entity NAME the first of ``NAME``, ``NAME.yml``, ``NAME.yaml``, ``NAME.json`` that
exists wins; if it is a folder, its files (sorted, recursively, hidden and ``~`` backups
skipped, only those extensions or none) are merged in order.  Empty files count for
nothing; anything else that is not a mapping is an error, as in ansible.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from control_server.errors import InventoryError
from control_server.inventory.values import ValueLoadError, load_document

VARS_EXTENSIONS = (".yml", ".yaml", ".json")
_VAULT_HEADER = "$ANSIBLE_VAULT;"


def find_vars_files(folder: Path, name: str) -> list[Path]:
    base = os.path.join(folder, name)
    for ext in ("", *VARS_EXTENSIONS):
        candidate = base + ext
        if os.path.isdir(candidate):
            return _folder_files(candidate)
        if os.path.exists(candidate):
            return [Path(candidate)]
    return []


def _folder_files(folder: str) -> list[Path]:
    found: list[Path] = []
    try:
        entries = sorted(os.listdir(folder))
    except OSError as exc:
        raise InventoryError(f"cannot list vars folder: {exc.strerror}", file=folder) from None
    for entry in entries:
        if entry.startswith(".") or entry.endswith("~"):
            continue
        ext = os.path.splitext(entry)[1]
        full = os.path.join(folder, entry)
        if os.path.isdir(full) and not ext:
            found.extend(_folder_files(full))
        elif os.path.isfile(full) and (not ext or ext in VARS_EXTENSIONS):
            found.append(Path(full))
    return found


def read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InventoryError(f"cannot read: {exc.strerror}", file=str(path)) from None
    return raw.decode("utf-8", "surrogateescape")


def load_vars_file(path: Path) -> dict[Any, Any]:
    text = read_text(path)
    if text.startswith(_VAULT_HEADER):
        raise InventoryError(
            "vault-encrypted vars files are not supported (hostplane cannot decrypt them)",
            file=str(path),
            line=1,
        )
    try:
        data = load_document(text).data
    except ValueLoadError as exc:
        raise InventoryError(str(exc), file=str(path), line=exc.line) from None
    if not data:
        return {}
    if not isinstance(data, dict):
        raise InventoryError(
            f"variables must be a mapping, got {type(data).__name__}", file=str(path)
        )
    return data


class VarsDirs:
    """group_vars/host_vars lookups for a list of base folders, cached per file."""

    def __init__(self, folders: list[Path]) -> None:
        self.folders = folders
        self._files: dict[Path, dict[Any, Any]] = {}
        self._entities: dict[tuple[str, str], list[dict[Any, Any]]] = {}
        self._listings: dict[str, frozenset[str] | None] = {}

    def group_vars(self, name: str) -> list[dict[Any, Any]]:
        """Every group_vars layer for group ``name``, one per base folder, in order."""
        return self._layers("group_vars", name)

    def host_vars(self, name: str) -> list[dict[Any, Any]]:
        return self._layers("host_vars", name)

    def _layers(self, kind: str, name: str) -> list[dict[Any, Any]]:
        key = (kind, name)
        if key not in self._entities:
            self._entities[key] = [
                self._merged(os.path.join(folder, kind), name) for folder in self.folders
            ]
        return self._entities[key]

    def _merged(self, folder: str, name: str) -> dict[Any, Any]:
        # Names like '/srv/chroot' are chroot-style hosts; ansible never looks them up.
        if not name or name.startswith(os.sep) or not self._may_exist(folder, name):
            return {}
        merged: dict[Any, Any] = {}
        for path in find_vars_files(Path(folder), name):
            if path not in self._files:
                self._files[path] = load_vars_file(path)
            merged.update(self._files[path])
        return merged

    def _may_exist(self, folder: str, name: str) -> bool:
        # One listing per folder instead of four stat() calls per host of a big fleet.
        if folder not in self._listings:
            try:
                self._listings[folder] = frozenset(os.listdir(folder))
            except OSError:
                self._listings[folder] = None
        entries = self._listings[folder]
        if entries is None:
            return False
        if os.sep in name:
            return True  # a nested path: let find_vars_files look
        return any(name + ext in entries for ext in ("", *VARS_EXTENSIONS))
