"""``-e`` extra vars, parsed the way Ansible does.

Each ``-e`` value is one source:

* ``@vars.yml`` / ``@vars.json``: a file holding a mapping (relative to ``cwd``);
* ``{"json": 1}`` (or any value starting with ``{``): inline JSON, or YAML flow style;
* ``k=v k2='v 2'``: shell-style words of ``key=value``; values stay strings (as in
  Ansible), a template's param declarations coerce them.

Later sources win over earlier ones, key by key (Ansible's ``hash_behaviour=replace``).
Values are made JSON-safe (YAML dates become ISO strings) because they end up in a JSON
request. A bad source is an ``ExtraVarsError`` naming it.
"""

from __future__ import annotations

import datetime
import json
import re
import shlex
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from control_server.errors import ExtraVarsError

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SHOWN = 60
# Far deeper than any real vars; a deeper value would hit Python's recursion limit later
# (rendering, the JSON request) as an internal error.
MAX_DEPTH = 100


def _label(source: str) -> str:
    # Inline JSON may be long (and may hold a password): name the source, not all of it.
    return source if len(source) <= _SHOWN else source[: _SHOWN - 3] + "..."


def _too_deep(source: str) -> ExtraVarsError:
    return ExtraVarsError(f"value nested deeper than {MAX_DEPTH} levels", _label(source))


def _json_safe(value: Any, source: str, depth: int = 0) -> Any:
    if depth > MAX_DEPTH:
        raise _too_deep(source)
    if isinstance(value, dict):
        return {str(k): _json_safe(v, source, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v, source, depth + 1) for v in value]
    if isinstance(value, datetime.date | datetime.datetime):
        return value.isoformat()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise ExtraVarsError(f"unsupported value of type {type(value).__name__}", _label(source))


def _check_mapping(data: Any, source: str) -> dict[str, Any]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"a {type(data).__name__}"
        raise ExtraVarsError(f"expected a mapping of variables, got {kind}", _label(source))
    for key in data:
        if not isinstance(key, str) or not _NAME.fullmatch(key):
            raise ExtraVarsError(f"{key!r} is not a valid variable name", _label(source))
    safe: dict[str, Any] = _json_safe(data, source)
    return safe


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    if mark is not None:
        return f"line {mark.line + 1} column {mark.column + 1}: {problem}"
    return str(problem)


def _load_text(text: str, source: str, as_json: bool) -> Any:
    try:
        return _parse_text(text, source, as_json)
    except RecursionError:
        raise _too_deep(source) from None


def _parse_text(text: str, source: str, as_json: bool) -> Any:
    if as_json:
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ExtraVarsError(f"invalid JSON: {exc}", _label(source)) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ExtraVarsError(f"invalid YAML: {_yaml_problem(exc)}", _label(source)) from None


def _from_file(source: str, cwd: Path) -> dict[str, Any]:
    raw = source[1:].strip()
    if not raw:
        raise ExtraVarsError("'@' needs a file name", source)
    path = Path(raw).expanduser()
    if not path.is_absolute():
        path = cwd / path
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ExtraVarsError(f"file not found: {path}", source) from None
    except IsADirectoryError:
        raise ExtraVarsError(f"is a directory: {path}", source) from None
    except UnicodeDecodeError:
        raise ExtraVarsError(f"not a UTF-8 text file: {path}", source) from None
    except OSError as exc:
        raise ExtraVarsError(f"cannot read {path}: {exc.strerror}", source) from None
    data = _load_text(text, source, as_json=path.suffix.lower() == ".json")
    return _check_mapping(data, source)


def _from_inline(source: str) -> dict[str, Any]:
    try:
        data = json.loads(source)
    except RecursionError:
        raise _too_deep(source) from None
    except json.JSONDecodeError as json_exc:
        # Ansible also accepts YAML flow style ({a: 1}); report JSON's error when both fail.
        try:
            data = yaml.safe_load(source)
        except (yaml.YAMLError, RecursionError):
            raise ExtraVarsError(f"invalid JSON: {json_exc}", _label(source)) from None
    return _check_mapping(data, source)


def _from_pairs(source: str) -> dict[str, Any]:
    try:
        words = shlex.split(source)
    except ValueError as exc:
        raise ExtraVarsError(f"cannot split into key=value words: {exc}", _label(source)) from None
    out: dict[str, Any] = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep:
            raise ExtraVarsError(f"expected key=value, got {word!r}", _label(source))
        if not _NAME.fullmatch(key):
            raise ExtraVarsError(f"{key!r} is not a valid variable name", _label(source))
        out[key] = value
    return out


def parse_one(source: str, cwd: Path | None = None) -> dict[str, Any]:
    """Parse a single ``-e`` value."""
    text = source.strip()
    if not text:
        raise ExtraVarsError("empty value", source)
    if text.startswith("@"):
        return _from_file(text, cwd if cwd is not None else Path.cwd())
    if text.startswith(("{", "[")):
        return _from_inline(text)
    return _from_pairs(text)


def parse_extra_vars(values: Iterable[str], cwd: Path | None = None) -> dict[str, Any]:
    """Merge every ``-e`` value, in order; later ones win."""
    merged: dict[str, Any] = {}
    for source in values:
        merged.update(parse_one(source, cwd))
    return merged


def merge_vars(host_vars: Mapping[str, Any], extra_vars: Mapping[str, Any]) -> dict[str, Any]:
    """The variables a template sees for one host: inventory vars, extra vars winning."""
    return {**host_vars, **extra_vars}
