"""Variable values: INI literals, YAML/JSON documents, and their JSON form.

Ansible types inventory values in three ways, all reproduced here: INI values go through
``ast.literal_eval`` (falling back to the raw text), YAML/JSON files keep their own types
(read JSON first, then YAML, as ansible's loader does), and ``ansible-inventory --list``
prints them with its legacy JSON profile (dates as ISO text, ``!unsafe`` strings wrapped).
"""

from __future__ import annotations

import ast
import datetime
import json
import math
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class UnsafeText(str):
    """A string marked ``!unsafe``: ansible never renders it as a template."""

    __slots__ = ()


@dataclass(frozen=True)
class VaultText:
    """An ``!vault`` value; hostplane keeps the ciphertext and never decrypts it."""

    ciphertext: str

    def __str__(self) -> str:
        return self.ciphertext


class ValueLoadError(ValueError):
    """A document that is neither JSON nor YAML; ``line`` is 1-based when known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


# --- INI values -------------------------------------------------------------------------


def parse_ini_value(text: str) -> Any:
    """The value of ``key=text`` in an INI inventory, typed as ansible types it."""
    try:
        with warnings.catch_warnings():
            # Escapes like '\d' only warn; the literal still parses, as in ansible.
            warnings.simplefilter("ignore", SyntaxWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
    except (TypeError, RecursionError, MemoryError) as exc:
        # ansible fails the whole source here (it only catches the two above).
        raise ValueLoadError(f"cannot evaluate value {_clip(text)!r}: {exc}") from None
    return _coerce_literal(value)


def _coerce_literal(value: Any) -> Any:
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple | set):
        return [_coerce_literal(v) for v in value]
    if isinstance(value, dict):
        return {k: _coerce_literal(v) for k, v in value.items()}
    if value is Ellipsis:
        return "..."
    if isinstance(value, complex):
        return str(value)
    if isinstance(value, bytes):
        # ansible decodes bytes without marking them trusted, so they print as unsafe.
        return UnsafeText(value.decode("utf-8", "surrogateescape"))
    return value


def _clip(text: str, size: int = 60) -> str:
    return text if len(text) <= size else text[:size] + "..."


# --- YAML / JSON documents -------------------------------------------------------------


@dataclass
class Document:
    """A loaded JSON/YAML document and where its mapping keys were (YAML only)."""

    data: Any
    key_lines: dict[int, tuple[dict[Any, Any], dict[Any, int]]]

    def line_of(self, mapping: Any, key: Any) -> int | None:
        entry = self.key_lines.get(id(mapping))
        if entry is None or entry[0] is not mapping:
            return None
        try:
            return entry[1].get(key)
        except TypeError:
            return None


def load_document(text: str) -> Document:
    """Parse ``text`` as JSON, else as YAML; raise ValueLoadError when it is neither."""
    _check_utf8(text)
    try:
        return Document(json.loads(text, object_hook=_json_object), {})
    except (ValueError, RecursionError):
        pass
    from control_server.inventory.yaml_loader import load_yaml  # PyYAML: on first use

    data, key_lines = load_yaml(text)
    return Document(data, key_lines)


def _check_utf8(text: str) -> None:
    # Files are decoded with surrogateescape (INI keeps such bytes, as ansible does); YAML
    # and JSON must be UTF-8, and the YAML parser would fail on them with an encode error.
    bad = _SURROGATE.search(text)
    if bad is not None:
        line = text.count("\n", 0, bad.start()) + 1
        byte = ord(bad.group()) - 0xDC00 if 0xDC80 <= ord(bad.group()) <= 0xDCFF else None
        what = f"byte 0x{byte:02x}" if byte is not None else "a lone surrogate"
        raise ValueLoadError(f"not valid UTF-8: {what}", line)


_SURROGATE = re.compile("[\ud800-\udfff]")


def _json_object(obj: dict[str, Any]) -> Any:
    # ansible's JSON decoder turns these two wrappers back into their values.
    if len(obj) == 1:
        if isinstance(obj.get("__ansible_unsafe"), str):
            return UnsafeText(obj["__ansible_unsafe"])
        if isinstance(obj.get("__ansible_vault"), str):
            return VaultText(obj["__ansible_vault"])
    return obj


# --- JSON form ---------------------------------------------------------------------------


def to_json_value(value: Any) -> Any:
    """``value`` as ``ansible-inventory --list`` prints it, read back by ``json.loads``."""
    if isinstance(value, UnsafeText):
        return {"__ansible_unsafe": str(value)}
    if isinstance(value, VaultText):
        return {"__ansible_vault": value.ciphertext}
    if isinstance(value, str):
        return str(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Mapping):
        return {json_key(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_json_value(v) for v in value]
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def json_key(key: Any) -> str:
    """A mapping key as JSON writes it."""
    if isinstance(key, str):
        return str(key)
    if key is True:
        return "true"
    if key is False:
        return "false"
    if key is None:
        return "null"
    if isinstance(key, int):
        return str(int(key))
    if isinstance(key, float):
        if math.isnan(key):
            return "NaN"
        if math.isinf(key):
            return "Infinity" if key > 0 else "-Infinity"
        return float.__repr__(key)
    return str(key)
