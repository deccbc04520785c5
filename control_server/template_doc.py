"""The YAML side of a command template (no Jinja2 here): header, placeholders, document.

A template file is a Jinja2 template whose first thing is a Jinja comment holding its
*header*, plain YAML that is read without rendering::

    {#
    description: Launch an instance
    params:
      name: {required: true, pattern: '[a-z0-9][a-z0-9-]{0,62}'}
    #}
    lock: instance-{{ name }}
    steps: ...

Rendering never pastes a value into the YAML text. Every ``{{ expression }}`` is output as
an opaque placeholder token (``Placeholders.token``), the text is parsed with
``yaml.safe_load``, and then the tokens in the parsed tree are replaced by the values:
a scalar that is exactly one token becomes the value itself, with its type; a string with
tokens inside gets each replaced by the value's text. A value can therefore never change
the document's structure, and is never rendered again.
"""

from __future__ import annotations

import copy
import math
import re
import secrets
from collections.abc import Mapping
from typing import Any

import yaml

from control_server.errors import TemplateError
from control_server.params import ParamSpec, parse_param_specs

HEADER_KEYS = ("description", "params")
BODY_KEYS = ("lock", "on_failure", "steps")
DEFAULT_LOCK_TIMEOUT = 60
# libyaml's parser when PyYAML has it: same results, many times faster (a fleet renders a
# template per host).
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# Any render's token; a match is ours when its nonce is (one pattern for all renders).
_TOKEN = re.compile(r"__hp([0-9a-f]{12})_([0-9]+)__")
_HEADER = re.compile(r"\A(\s*)\{#-?(.*?)-?#\}", re.S)


def _yaml_where(exc: yaml.YAMLError, first_line: int = 1) -> tuple[int | None, str]:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    if context:
        problem = f"{problem} ({context})"
    line = mark.line + first_line if mark is not None else None
    return line, str(problem)


def parse_header(source: str, template: str) -> tuple[str, tuple[ParamSpec, ...]]:
    """Read ``(description, params)`` from a template's leading ``{# ... #}`` comment.

    A template without a header has no params and no description. Line numbers in errors
    are the file's lines (the header's YAML starts on the comment's first line).
    """
    match = _HEADER.match(source)
    if match is None:
        return "", ()
    first_line = match.group(1).count("\n") + 1
    try:
        header = yaml.load(match.group(2), Loader=_Loader)
    except yaml.YAMLError as exc:
        line, problem = _yaml_where(exc, first_line)
        raise TemplateError(f"header is not valid YAML: {problem}", template, line) from None
    if header is None:
        return "", ()
    if not isinstance(header, dict):
        raise TemplateError("the header must be a YAML mapping", template, first_line)
    unknown = [key for key in header if key not in HEADER_KEYS]
    if unknown:
        raise TemplateError(
            f"unknown header key {unknown[0]!r} (known: {', '.join(HEADER_KEYS)})",
            template,
            first_line,
        )
    description = header.get("description") or ""
    if not isinstance(description, str):
        raise TemplateError("description must be a string", template, first_line)
    return description.strip(), parse_param_specs(template, header.get("params"))


class Placeholders:
    """The values of one render, each standing in the YAML text as an opaque token.

    Tokens are ``__hp<random>_<n>__``: only letters, digits and ``_``, so they are a
    plain scalar wherever they land (key, value, quoted or block text) and never YAML
    syntax; the random part is new for every render, so template text cannot collide.
    """

    def __init__(self) -> None:
        self.nonce = secrets.token_hex(6)
        self.values: list[Any] = []
        self._needle = "hp" + self.nonce

    def token(self, value: Any) -> str:
        self.values.append(value)
        return f"__hp{self.nonce}_{len(self.values) - 1}__"

    def contains(self, text: str) -> bool:
        # lower(): a filter such as upper may have mangled a token; still ours.
        return self._needle in text or self._needle in text.lower()

    def text_of(self, value: Any) -> str:
        """The value's text where it stands inside a longer string (what Jinja prints)."""
        return self.resolve(value) if isinstance(value, str) else str(value)

    def _index(self, match: re.Match[str] | None) -> int | None:
        if match is None or match.group(1) != self.nonce:
            return None
        return int(match.group(2))

    def _text_of_match(self, match: re.Match[str]) -> str:
        index = self._index(match)
        return match.group(0) if index is None else self.text_of(self.values[index])

    def resolve(self, text: str) -> str:
        """Replace the tokens in a string by their values' text."""
        if not self.contains(text):
            return text
        out = _TOKEN.sub(self._text_of_match, text)
        if self.contains(out):
            raise TemplateError(
                "a placeholder was altered: a filter or method was applied to template text "
                "captured with {% set %} or returned by a macro; apply it to the values instead"
            )
        return out

    def resolve_deep(self, obj: Any) -> Any:
        """``resolve`` on every string inside lists, tuples and mappings too."""
        if isinstance(obj, str):
            return self.resolve(obj)
        if isinstance(obj, list):
            return [self.resolve_deep(item) for item in obj]
        if isinstance(obj, tuple):
            return tuple(self.resolve_deep(item) for item in obj)
        if isinstance(obj, dict):
            return {self.resolve_deep(k): self.resolve_deep(v) for k, v in obj.items()}
        return obj

    def _value(self, value: Any) -> Any:
        # A value is returned as it is; only strings made from template text (a filtered
        # macro result, say) can hold tokens, and they become text here, never structure.
        if isinstance(value, str):
            return self.resolve(value)
        if isinstance(value, Mapping):
            return {self._key(k): self._value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._value(v) for v in value]
        return copy.deepcopy(value)

    def _key(self, key: Any) -> Any:
        return self.text_of(key) if isinstance(key, str) else key

    def substitute(self, tree: Any) -> Any:
        """Put the values back into a parsed document."""
        if isinstance(tree, str):
            index = self._index(_TOKEN.fullmatch(tree))
            if index is not None:
                return self._value(self.values[index])
            return self.resolve(tree)
        if isinstance(tree, dict):
            return {self._key(self.substitute(k)): self.substitute(v) for k, v in tree.items()}
        if isinstance(tree, list):
            return [self.substitute(item) for item in tree]
        return tree

    def show(self, text: str) -> str:
        """Rendered text for an error message: tokens shown as ``{{...}}``, values hidden."""
        return _TOKEN.sub(lambda m: "{{...}}" if self._index(m) is not None else m.group(0), text)


def _parse_rendered(text: str, ph: Placeholders, template: str, host: str) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        line, problem = _yaml_where(exc)
        where = ""
        if line is not None:
            lines = text.splitlines()
            shown = ph.show(lines[line - 1]).strip() if 0 < line <= len(lines) else ""
            where = f" at line {line} of the rendered text ({shown!r})"
        raise TemplateError(
            f"the rendered document is not valid YAML{where}: {problem}", template, None, host
        ) from None


def _lock(raw: Any, template: str, host: str) -> dict[str, Any] | None:
    if raw is None or raw == "":
        return None
    if isinstance(raw, str):
        return {"name": raw, "timeout": DEFAULT_LOCK_TIMEOUT}
    if isinstance(raw, dict) and isinstance(raw.get("name"), str) and set(raw) <= {"name", "timeout"}:
        timeout = raw.get("timeout", DEFAULT_LOCK_TIMEOUT)
        # math.isfinite: a NaN timeout compares false with everything (it would wait forever).
        if (isinstance(timeout, int | float) and not isinstance(timeout, bool)
                and math.isfinite(timeout) and timeout >= 0):
            return {"name": raw["name"], "timeout": timeout}
    raise TemplateError(
        "lock must be a name, or {name: ..., timeout: seconds}", template, None, host
    )


def load_document(text: str, ph: Placeholders, template: str, host: str) -> dict[str, Any]:
    """Parse rendered text, put the values back, check the top level.

    Returns ``{"lock": dict | None, "on_failure": str, "steps": list}``.
    """
    parsed = _parse_rendered(text, ph, template, host)
    try:
        doc = ph.substitute(parsed)
    except TemplateError as exc:
        raise TemplateError(exc.reason, template, None, host) from None
    if not isinstance(doc, dict):
        raise TemplateError("the rendered document must be a mapping with steps", template, None, host)
    for key in doc:
        if key in HEADER_KEYS:
            raise TemplateError(
                f"{key} belongs in the header comment ({{# ... #}}) at the top", template, None, host
            )
        if key not in BODY_KEYS:
            known = ", ".join(BODY_KEYS)
            raise TemplateError(f"unknown key {key!r} (known: {known})", template, None, host)
    steps = doc.get("steps", [])
    if not isinstance(steps, list):
        # 'steps:' with nothing under it is null: say so rather than run nothing.
        hint = " (write 'steps: []' for none)" if steps is None else ""
        raise TemplateError(f"steps must be a list{hint}", template, None, host)
    on_failure = doc.get("on_failure") or "stop"
    if on_failure not in ("stop", "rollback"):
        raise TemplateError(
            f"on_failure must be stop or rollback, got {on_failure!r}", template, None, host
        )
    return {"lock": _lock(doc.get("lock"), template, host), "on_failure": on_failure, "steps": steps}
