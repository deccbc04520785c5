"""JSON through the C accelerator ``_json`` directly, without importing ``json``.

``import json`` imports ``re`` (and compiles its patterns) for ``json.decoder``: several
milliseconds of CPU on every host, every sequence. ``json`` itself parses and writes with
``_json``'s C scanner and encoder; this module drives them the same way ``json.loads`` and
``json.dumps(obj, ensure_ascii=True, separators=(",", ":"))`` do, so the results are the
same. Anything the fast path cannot decide (no ``_json``, input that is not plain UTF-8, a
document that does not parse) goes to ``json`` itself, which then gives its own result or
its own error.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every host start-up time; annotations are strings
    from typing import Any

try:
    import _json
except ImportError:  # another Python: json works it out
    _json = None  # type: ignore[assignment]

_WHITESPACE = " \t\n\r"
_NAN = float("nan")
_CONSTANTS = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": _NAN}


class _Context:
    """The decoder settings ``_json.make_scanner`` reads (``json.JSONDecoder()``'s)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = _CONSTANTS.__getitem__


_scan: Any = None
if _json is not None:
    try:
        _scan = _json.make_scanner(_Context())  # type: ignore[arg-type]
    except Exception:
        _scan = None


def _not_serializable(obj: Any) -> Any:
    raise TypeError("Object of type %s is not JSON serializable" % type(obj).__name__)


def loads(data: bytes) -> Any:
    """``json.loads(data)``."""
    if _scan is not None and data[:1] in (b"{", b"[", b" ", b"\n", b"\r", b"\t") \
            and b"\0" not in data[:4]:
        try:
            text = data.decode("utf-8", "surrogatepass")  # as json.loads decodes UTF-8
            start = len(text) - len(text.lstrip(_WHITESPACE))
            value, end = _scan(text, start)
            if not text[end:].strip(_WHITESPACE):
                return value
        except Exception:
            pass  # json says what is wrong, in its own words
    import json

    return json.loads(data)


def dumps(obj: Any) -> str:
    """``json.dumps(obj, ensure_ascii=True, separators=(",", ":"))`` of a dict or list."""
    if _json is not None and isinstance(obj, (dict, list)):
        try:
            encode = _json.make_encoder(  # a fresh one: its circular-check markers are per call
                {}, _not_serializable, _json.encode_basestring_ascii, None, ":", ",",
                False, False, True,
            )
        except Exception:
            encode = None
        if encode is not None:
            return "".join(encode(obj, 0))
    import json

    return json.dumps(obj, ensure_ascii=True, separators=(",", ":"))
