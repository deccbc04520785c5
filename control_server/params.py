"""Template parameters: their declaration (``ParamSpec``) and how values are checked.

A template declares its params in its header (see ``docs/templates.md``)::

    params:
      name:       {required: true, pattern: '[a-z0-9][a-z0-9-]{0,62}', description: ...}
      memory_mib: {type: int, default: 256, min: 16}
      password:   {secret: true}

Values come from the variables a render sees (inventory vars, then extra vars). Like
Ansible, a ``-e count=3`` string is coerced to the declared type; anything that cannot be
coerced is a ``ParamError`` naming the param and what was expected. A secret param's value
never appears in an error message.
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from control_server.errors import ParamError, TemplateError
from control_server.template_filters import FilterError, to_bool

TYPES = ("str", "int", "float", "bool", "list", "dict", "path")
SPEC_KEYS = frozenset(
    {"type", "required", "default", "choices", "pattern", "secret", "description", "min", "max"}
)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INT = re.compile(r"[+-]?[0-9]+")
MASK = "********"


@dataclass(frozen=True)
class ParamSpec:
    name: str
    type: str = "str"
    required: bool = False
    default: Any = None
    choices: tuple[Any, ...] | None = None
    pattern: str | None = None
    secret: bool = False
    description: str = ""
    minimum: float | None = None
    maximum: float | None = None


def _infer_type(default: Any) -> str:
    for py, name in ((bool, "bool"), (int, "int"), (float, "float"), (list, "list"), (dict, "dict")):
        if isinstance(default, py):
            return name
    return "str"


def _spec_error(template: str, name: str, message: str) -> TemplateError:
    return TemplateError(f"param {name!r}: {message}", template)


def _check_spec_fields(template: str, name: str, raw: Mapping[str, Any]) -> None:
    unknown = sorted(set(raw) - SPEC_KEYS)
    if unknown:
        known = ", ".join(sorted(SPEC_KEYS))
        raise _spec_error(template, name, f"unknown key {unknown[0]!r} (known: {known})")
    kind = raw.get("type", "str")
    if kind not in TYPES:
        raise _spec_error(template, name, f"unknown type {kind!r} (known: {', '.join(TYPES)})")
    for key in ("required", "secret"):
        if key in raw and not isinstance(raw[key], bool):
            raise _spec_error(template, name, f"{key} must be true or false")
    if raw.get("required") and raw.get("default") is not None:
        raise _spec_error(template, name, "a required param cannot have a default")
    if "choices" in raw and not isinstance(raw["choices"], list):
        raise _spec_error(template, name, "choices must be a list")
    for key in ("min", "max"):
        value = raw.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise _spec_error(template, name, f"{key} must be a number")
    pattern = raw.get("pattern")
    if pattern is not None:
        try:
            re.compile(str(pattern))
        except re.error as exc:
            raise _spec_error(template, name, f"bad pattern: {exc}") from None
    if not isinstance(raw.get("description", ""), str):
        raise _spec_error(template, name, "description must be a string")


def parse_param_specs(template: str, raw: Any) -> tuple[ParamSpec, ...]:
    """Turn a header's ``params`` mapping into specs; a bad declaration is a TemplateError."""
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise TemplateError("params must be a mapping of param name to its spec", template)
    specs = []
    for name, body in raw.items():
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise TemplateError(f"param name {name!r} is not a valid variable name", template)
        body = {} if body is None else body
        if not isinstance(body, dict):
            raise _spec_error(template, name, "the spec must be a mapping")
        _check_spec_fields(template, name, body)
        default = body.get("default")
        spec = ParamSpec(
            name=name,
            type=str(body.get("type", _infer_type(default) if default is not None else "str")),
            required=bool(body.get("required", False)),
            default=default,
            choices=tuple(body["choices"]) if "choices" in body else None,
            pattern=str(body["pattern"]) if body.get("pattern") is not None else None,
            secret=bool(body.get("secret", False)),
            description=str(body.get("description", "")),
            minimum=body.get("min"),
            maximum=body.get("max"),
        )
        if default is not None:
            try:
                check_value(spec, default)
            except ParamError as exc:
                raise _spec_error(template, name, f"bad default: {exc.expected}") from None
        specs.append(spec)
    return tuple(specs)


def _shown(spec: ParamSpec, value: Any) -> str:
    return MASK if spec.secret else repr(value)


def _coerce_scalar(spec: ParamSpec, value: Any) -> Any:
    kind = spec.type
    if kind in ("str", "path"):
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise ParamError(spec.name, f"expected a string, got {_shown(spec, value)}")
    if kind == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and _INT.fullmatch(value.strip()):
            return int(value.strip())
        raise ParamError(spec.name, f"expected an integer, got {_shown(spec, value)}")
    if kind == "float":
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        try:
            number = float(value) if isinstance(value, str) else math.nan
        except ValueError:
            number = math.nan
        if math.isfinite(number):
            return number
        raise ParamError(spec.name, f"expected a number, got {_shown(spec, value)}")
    try:
        return to_bool(value)
    except FilterError:
        raise ParamError(
            spec.name, f"expected a boolean (true/false/yes/no/on/off/1/0), got {_shown(spec, value)}"
        ) from None


def _coerce_list(spec: ParamSpec, value: Any) -> list[Any]:
    if isinstance(value, list | tuple):
        return list(value)
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = None
            if isinstance(parsed, list):
                return parsed
            raise ParamError(spec.name, "expected a list; the value is not a valid JSON list")
        # Ansible's comma-separated list form: -e 'gather=cpu,memory'
        return [item.strip() for item in text.split(",") if item.strip()]
    raise ParamError(spec.name, f"expected a list, got {_shown(spec, value)}")


def _coerce_dict(spec: ParamSpec, value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            return parsed
    raise ParamError(spec.name, f"expected a mapping (or a JSON object), got {_shown(spec, value)}")


def coerce(spec: ParamSpec, value: Any) -> Any:
    """Convert ``value`` to the spec's type, as Ansible would, or raise ParamError."""
    if spec.type == "list":
        return _coerce_list(spec, value)
    if spec.type == "dict":
        return _coerce_dict(spec, value)
    coerced = _coerce_scalar(spec, value)
    if spec.type == "path" and (not coerced.startswith("/") or "\0" in coerced):
        raise ParamError(spec.name, f"expected an absolute path, got {_shown(spec, value)}")
    return coerced


def _check_choices(spec: ParamSpec, value: Any) -> None:
    if spec.choices is None:
        return
    items = value if spec.type == "list" else [value]
    for item in items:
        if item not in spec.choices:
            allowed = ", ".join(map(str, spec.choices))
            raise ParamError(spec.name, f"expected one of {allowed}, got {_shown(spec, item)}")


def _check_range(spec: ParamSpec, value: Any) -> None:
    if spec.type not in ("int", "float"):
        return
    if spec.minimum is not None and value < spec.minimum:
        raise ParamError(spec.name, f"expected at least {spec.minimum}, got {_shown(spec, value)}")
    if spec.maximum is not None and value > spec.maximum:
        raise ParamError(spec.name, f"expected at most {spec.maximum}, got {_shown(spec, value)}")


def check_value(spec: ParamSpec, value: Any) -> Any:
    """Coerce and check one value; return it in the param's type."""
    value = coerce(spec, value)
    _check_choices(spec, value)
    _check_range(spec, value)
    matchable = spec.pattern is not None and spec.type in ("str", "path")
    if matchable and re.fullmatch(str(spec.pattern), value) is None:
        raise ParamError(
            spec.name,
            f"expected a value matching the pattern {spec.pattern!r}, got {_shown(spec, value)}",
        )
    return value


# The HTTP API's vars are JSON, so they are taken as typed (docs/http-api.md): no
# Ansible-like coercion there, which is for the CLI's ``-e`` strings only.
_JSON_KINDS: dict[str, tuple[str, tuple[type, ...]]] = {
    "str": ("a string", (str,)),
    "path": ("a string (an absolute path)", (str,)),
    "int": ("an integer", (int,)),
    "float": ("a number", (int, float)),
    "bool": ("a boolean (true or false)", (bool,)),
    "list": ("a list", (list,)),
    "dict": ("a mapping (a JSON object)", (dict,)),
}


def _json_kind(value: Any) -> str:
    for py, name in ((bool, "a boolean"), (int, "an integer"), (float, "a number"),
                     (str, "a string"), (list, "a list"), (dict, "a mapping")):
        if isinstance(value, py):
            return name
    return type(value).__name__


def strict_type_error(spec: ParamSpec, value: Any) -> str | None:
    """Why a JSON value does not have the param's type (None: it has, or it is null, which
    means not given); names types only, so a secret's value never shows."""
    if value is None:
        return None
    expected, kinds = _JSON_KINDS[spec.type]
    fits = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
    if fits:
        return None
    return f"expected {expected}, got {_json_kind(value)}"


def resolve_params(
    specs: tuple[ParamSpec, ...], variables: Mapping[str, Any], template: str | None = None
) -> dict[str, Any]:
    """Every declared param's value: given (checked and coerced), else its default.

    An optional param without a default is ``None`` (defined, so a template can test it
    with ``{% if base_image %}`` under StrictUndefined).
    """
    values: dict[str, Any] = {}
    for spec in specs:
        given = variables.get(spec.name)
        if given is None:
            if spec.required:
                raise ParamError(spec.name, "required param is missing", template)
            values[spec.name] = copy.deepcopy(spec.default)
            continue
        try:
            values[spec.name] = check_value(spec, given)
        except ParamError as exc:
            raise ParamError(exc.param, exc.expected, template) from None
    return values
