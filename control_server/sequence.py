"""A rendered, checked command sequence, and the request built from it.

Steps are written in a template as ``{name, <action>: {args}, timeout, undo, when,
ignore_errors}`` (exactly one action key, as in Ansible tasks) and converted here to the
wire form ``{name, action, args, timeout, undo: {action, args[, timeout]}, ignore_errors}``
defined by ``host_executor.protocol``. Every step is checked against the action schemas
before anything is sent; a problem is a ``StepError`` naming the host, template and step.

Secrets (params declared ``secret: true``) travel to the host as they are, named in the
request's ``redact`` list so that the executor masks them before it journals or sends an
event; anything shown to a person goes through ``Sequence.redact`` first as well.
"""

from __future__ import annotations

import base64
import copy
import difflib
import json
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from control_server.errors import StepError
from control_server.params import MASK, ParamSpec
from host_executor import protocol

STEP_OPTIONS = ("name", "when", "timeout", "undo", "ignore_errors")
ADHOC_TEMPLATE = "(exec)"


def _secret_texts(value: Any) -> Iterable[str]:
    if isinstance(value, Mapping):
        for item in value.values():
            yield from _secret_texts(item)
        return
    if isinstance(value, list | tuple):
        for item in value:
            yield from _secret_texts(item)
        return
    if value is None or isinstance(value, bool):
        return
    text = str(value)
    if text:
        yield text


def _secret_forms(value: Any) -> Iterable[str]:
    for text in _secret_texts(value):
        yield from _text_forms(text)


def _text_forms(text: str) -> Iterable[str]:
    # The forms a template's filters commonly give a secret: as is, quoted for a shell,
    # escaped inside JSON, quoted by repr() (error messages), base64.
    yield text
    yield shlex.quote(text)
    yield json.dumps(text)[1:-1]
    yield repr(text)[1:-1]
    yield base64.b64encode(text.encode("utf-8")).decode("ascii")


def secret_strings(specs: Iterable[ParamSpec], values: Mapping[str, Any]) -> frozenset[str]:
    """The strings to hide for the given param values (those of ``secret: true`` params)."""
    out: set[str] = set()
    for spec in specs:
        if spec.secret:
            out.update(_secret_forms(values.get(spec.name)))
    return frozenset(out)


def forms_of(values: Iterable[str]) -> frozenset[str]:
    """Every form of the given secret texts, as ``secret_strings`` gives them."""
    return frozenset(form for text in values if text for form in _text_forms(text))


def secret_values(specs: Iterable[ParamSpec], values: Mapping[str, Any]) -> frozenset[str]:
    """The raw texts of the secret params' values: the request's ``redact`` list (the
    executor derives the quoted and encoded forms itself)."""
    out: set[str] = set()
    for spec in specs:
        if spec.secret:
            out.update(_secret_texts(values.get(spec.name)))
    return frozenset(out)


def redact(obj: Any, secrets: Iterable[str]) -> Any:
    """A copy of ``obj`` with every occurrence of a secret (also inside text) as ``********``."""
    ordered = sorted(set(secrets), key=len, reverse=True)
    if not ordered:
        return obj
    return _redact(obj, ordered)


def _redact(obj: Any, ordered: list[str]) -> Any:
    if isinstance(obj, str):
        for secret in ordered:
            if secret in obj:
                obj = obj.replace(secret, MASK)
        return obj
    if isinstance(obj, Mapping):
        return {_redact(k, ordered): _redact_b64(v, ordered) if str(k).endswith("_b64")
                else _redact(v, ordered) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_redact(item, ordered) for item in obj]
    if isinstance(obj, int | float) and not isinstance(obj, bool) and str(obj) in ordered:
        return MASK
    return obj


def _redact_b64(value: Any, ordered: list[str]) -> Any:
    # Exact output bytes (``stdout_b64``): a secret inside them has no base64 text of its
    # own, so mask the decoded bytes (an older executor's journal sends them unmasked).
    if not isinstance(value, str):
        return _redact(value, ordered)
    try:
        data = base64.b64decode(value, validate=True)
    except ValueError:
        return _redact(value, ordered)
    for secret in ordered:
        data = data.replace(secret.encode("utf-8", "surrogatepass"), MASK.encode())
    return base64.b64encode(data).decode("ascii")


@dataclass(frozen=True)
class Sequence:
    """What one host will run: wire-form steps plus the request-level settings."""

    template: str
    host: str
    description: str
    params: dict[str, Any]
    lock: dict[str, Any] | None
    on_failure: str
    steps: list[dict[str, Any]]
    secrets: frozenset[str] = field(default=frozenset(), repr=False)
    secret_values: frozenset[str] = field(default=frozenset(), repr=False)

    def redact(self, obj: Any) -> Any:
        """``obj`` (an event, a step, a message) with this sequence's secrets masked."""
        return redact(obj, self.secrets)

    def __repr__(self) -> str:
        # Sequences end up in logs and tracebacks: the repr never shows a secret.
        shown = self.redact(
            {"params": self.params, "lock": self.lock, "steps": self.steps}
        )
        return (
            f"Sequence(template={self.template!r}, host={self.host!r}, "
            f"on_failure={self.on_failure!r}, lock={shown['lock']!r}, "
            f"params={shown['params']!r}, steps={shown['steps']!r})"
        )


class _Where:
    """Who to name in a StepError."""

    def __init__(self, template: str, host: str, index: int, name: str | None) -> None:
        self.template, self.host, self.index, self.name = template, host, index, name

    def error(self, message: str) -> StepError:
        return StepError(message, self.name, self.index, self.host, self.template)


def _suggest(key: str) -> str:
    close = difflib.get_close_matches(key, [*protocol.ACTIONS, *STEP_OPTIONS], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _one_action(raw: Mapping[str, Any], allowed: tuple[str, ...], where: _Where, what: str) -> str:
    actions = [key for key in raw if key in protocol.ACTIONS]
    for key in raw:
        if key not in protocol.ACTIONS and key not in allowed:
            raise where.error(f"{what}unknown action {str(key)!r}{_suggest(str(key))}")
    if not actions:
        known = ", ".join(sorted(protocol.ACTIONS))
        raise where.error(f"{what}no action (one of: {known})")
    if len(actions) > 1:
        raise where.error(f"{what}more than one action ({', '.join(actions)})")
    return actions[0]


def _number_text(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


def _coerce_arg(types: tuple[str, ...], key: str, value: Any) -> Any:
    """Convert a value as Ansible converts module arguments to their declared type.

    ``"{{ count }}"`` keeps the value's type (so lists stay lists), which would make
    ``argv: [echo, "{{ count }}"]`` carry an int; a number where text is expected becomes
    its text, and a numeric string where a number is expected becomes the number.
    """
    if key in ("argv", "unless") and isinstance(value, list):
        return [_number_text(item) for item in value]
    if key == "env" and isinstance(value, dict):
        return {k: _number_text(v) for k, v in value.items()}
    if "str" in types and "int" not in types:
        return _number_text(value)
    if isinstance(value, str) and "int" in types and "str" not in types:
        text = value.strip()
        if text.lstrip("+-").isdigit():
            return int(text)
        if "float" in types:
            try:
                return float(text)
            except ValueError:
                return value
    return value


def _args(raw: Any, action: str, where: _Where, what: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise where.error(f"{what}the arguments of {action} must be a mapping ({action}: {{...}})")
    schema = protocol.ACTIONS[action]
    args: dict[str, Any] = {}
    for key, value in raw.items():
        # A null argument means "not given" (an optional param left unset, for instance).
        if value is None:
            continue
        spec = schema.get(str(key))
        args[str(key)] = _coerce_arg(spec[0], str(key), value) if spec else value
    return args


def _undo(raw: Any, where: _Where) -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise where.error("undo must be a mapping with one action ({<action>: {...}})")
    action = _one_action(raw, ("timeout",), where, "undo: ")
    undo: dict[str, Any] = {"action": action, "args": _args(raw[action], action, where, "undo: ")}
    if raw.get("timeout") is not None:
        undo["timeout"] = _coerce_arg(protocol.NUM, "timeout", raw["timeout"])
    return undo


def step_to_wire(raw: Any, index: int, template: str, host: str) -> dict[str, Any] | None:
    """Convert one template step to its wire form; ``None`` when ``when`` is false."""
    name = raw.get("name") if isinstance(raw, dict) else None
    where = _Where(template, host, index, name if isinstance(name, str) else None)
    if not isinstance(raw, dict):
        raise where.error("a step must be a mapping ({name: ..., <action>: {...}})")
    if not isinstance(name, str) or not name.strip():
        raise where.error("every step needs a non-empty name")
    action = _one_action(raw, STEP_OPTIONS, where, "")
    when = raw.get("when", True)
    if not isinstance(when, bool):
        raise where.error(f"when: expected true or false (e.g. \"{{{{ x is defined }}}}\"), got {type(when).__name__}")
    if not when:
        return None
    wire = {
        "name": name,
        "action": action,
        "args": _args(raw[action], action, where, ""),
        "timeout": _coerce_arg(protocol.NUM, "timeout", raw.get("timeout")),
        "undo": _undo(raw.get("undo"), where),
        "ignore_errors": raw.get("ignore_errors", False),
    }
    try:
        protocol.validate_step(wire, index)
        json.dumps(wire, allow_nan=False)
    except protocol.ProtocolError as exc:
        raise where.error(f"{exc.field}: {exc.message}" if exc.field else exc.message) from None
    except (TypeError, ValueError) as exc:
        raise where.error(f"a value cannot be sent as JSON: {exc}") from None
    return wire


def steps_to_wire(raw_steps: list[Any], template: str, host: str) -> list[dict[str, Any]]:
    """Every kept step in wire form; errors name the step by its place in the template."""
    out = []
    for index, raw in enumerate(raw_steps):
        wire = step_to_wire(raw, index, template, host)
        if wire is not None:
            out.append(wire)
    return out


def build_request(
    seq: Sequence,
    request_id: str,
    check: bool = False,
    diff: bool = False,
    deadline: float | None = None,
    on_disconnect: str = "detach",
) -> dict[str, Any]:
    """The executor request for a sequence, validated by ``protocol.validate_request``."""
    doc = protocol.make_request(
        request_id,
        copy.deepcopy(seq.steps),
        check=check,
        diff=diff,
        lock=copy.deepcopy(seq.lock),
        deadline=deadline,
        on_failure=seq.on_failure,
        redact=sorted(seq.secret_values),
        on_disconnect=on_disconnect,
    )
    try:
        return protocol.validate_request(doc)
    except protocol.ProtocolError as exc:
        message = f"{exc.field}: {exc.message}" if exc.field else exc.message
        raise StepError(
            str(seq.redact(message)), exc.step_name, exc.step_index, seq.host, seq.template
        ) from None


def adhoc_sequence(argv: list[str], host: str, shell: bool = False) -> Sequence:
    """The one-step sequence of ``hostplane exec``: a command (argv), or a shell line."""
    if not argv or not any(arg.strip() for arg in argv):
        raise StepError("nothing to run: give a command", host=host, template=ADHOC_TEMPLATE)
    if shell:
        cmd = " ".join(argv)
        step = {"name": cmd, "action": "shell", "args": {"cmd": cmd}}
    else:
        step = {"name": shlex.join(argv), "action": "command", "args": {"argv": list(argv)}}
    wire = {**step, "timeout": None, "undo": None, "ignore_errors": False}
    try:
        protocol.validate_step(wire, 0)
    except protocol.ProtocolError as exc:
        raise StepError(exc.message, str(step["name"]), 0, host, ADHOC_TEMPLATE) from None
    return Sequence(
        template=ADHOC_TEMPLATE,
        host=host,
        description="ad hoc " + ("shell command" if shell else "command"),
        params={},
        lock=None,
        on_failure="stop",
        steps=[wire],
    )
