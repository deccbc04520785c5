"""Masking the request's secrets out of every event before it is journaled or sent.

The request's optional ``redact`` field lists the secret values (the control side fills it
from ``secret: true`` params). Each value is hidden in the forms a step commonly prints it:
as is, shell-quoted, JSON-escaped, Python repr, base64. Exact output bytes (``*_b64`` fields) are
decoded, masked and encoded again, since a secret inside longer output has no fixed base64
text of its own. A stream cut at ``output_limit`` in the middle of a secret loses the cut
tail too.

Imported only when a request names something to redact: a request without secrets pays
nothing (no import, no per-event work).
"""

from __future__ import annotations

import base64
import binascii
import json

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every host start-up time; annotations are strings
    from typing import Any, Dict, Iterable, List, Optional

#: The same text as ``control_server.params.MASK`` (the executor may not import it).
MASK = "********"
_MASK_BYTES = MASK.encode("ascii")
# Protocol fields a control server parses: masking them (a secret "ok" say) would garble
# the event, and they never carry request text.
_STRUCTURAL = frozenset((
    "event", "status", "protocol", "digest", "version", "python", "pid", "index", "rc",
    "exit", "counts", "duration", "id", "not_run", "failed_step", "ignored",
    "interrupted", "rolled_back", "steps", "code", "action", "step_index",
))
# A cut-off tail shorter than this is too ambiguous to mask.
_MIN_TAIL = 3


def forms(value: str) -> List[str]:
    """The texts that show ``value``: raw, shell-quoted, JSON-escaped, repr, base64."""
    import shlex

    raw = value.encode("utf-8", "surrogatepass")
    b64 = base64.b64encode(raw).decode("ascii")
    found = {
        value,
        shlex.quote(value),
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        repr(value)[1:-1],  # error messages quote names with %r
        ascii(value)[1:-1],
        b64,
        b64.rstrip("="),
        base64.urlsafe_b64encode(raw).decode("ascii"),
    }
    found.discard("")
    return sorted(found, key=len, reverse=True)  # longest first: a quoted form before its core


def values_of(doc: Any) -> List[str]:
    """The non-empty strings of a request's ``redact`` field, leniently (a bad request's
    error event is masked too, before validation has said anything)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("redact"), list):
        return []
    return [v for v in doc["redact"] if isinstance(v, str) and v]


class Redactor:
    """Masks a fixed set of secrets in events (dicts of JSON values)."""

    def __init__(self, values: Iterable[str]) -> None:
        texts = set()
        for value in values:
            texts.update(forms(value))
        self.texts = sorted(texts, key=len, reverse=True)
        self.blobs = [t.encode("utf-8", "surrogatepass") for t in self.texts]

    def text(self, value: str) -> str:
        for secret in self.texts:
            if secret in value:
                value = value.replace(secret, MASK)
        return value

    def data(self, value: bytes) -> bytes:
        for secret in self.blobs:
            if secret in value:
                value = value.replace(secret, _MASK_BYTES)
        return value

    def value(self, obj: Any) -> Any:
        """A masked copy of any JSON value (mapping keys too)."""
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, dict):
            return {self.value(k): self.value(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [self.value(item) for item in obj]
        if isinstance(obj, (int, float)) and not isinstance(obj, bool) and str(obj) in self.texts:
            return MASK
        return obj

    def event(self, event: Dict[str, Any]) -> Dict[str, Any]:
        """A masked copy of one event."""
        out: Dict[str, Any] = {}
        for key, value in event.items():
            if key in _STRUCTURAL:
                out[key] = value
            elif key.endswith("_b64") and isinstance(value, str):
                out[key] = self._b64(value, bool(event.get(key[:-4] + "_truncated")))
            else:
                out[key] = self.value(value)
                if isinstance(value, str) and event.get(key + "_truncated") is True:
                    out[key] = _cut_tail(out[key], self.texts, MASK)
        return out

    def _b64(self, value: str, truncated: bool) -> str:
        try:
            raw = base64.b64decode(value.encode("ascii"), validate=True)
        except (binascii.Error, ValueError):
            return self.text(value)
        masked = self.data(raw)
        if truncated:
            masked = _cut_tail(masked, self.blobs, _MASK_BYTES)
        return base64.b64encode(masked).decode("ascii")


def _cut_tail(value: Any, secrets: List[Any], mask: Any) -> Any:
    """``value`` with a trailing start of a secret (output cut mid-secret) masked."""
    for secret in secrets:
        for size in range(min(len(secret) - 1, len(value)), _MIN_TAIL - 1, -1):
            if value.endswith(secret[:size]):
                return value[: len(value) - size] + mask
    return value


def redactor_for(doc: Any) -> Optional[Redactor]:
    """The request's redactor, or None when it names nothing to hide."""
    values = values_of(doc)
    return Redactor(values) if values else None
