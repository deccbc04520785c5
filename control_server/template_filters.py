"""The filters command templates can use, as plain functions (no Jinja2 here).

``control_server.templating`` registers them with its environments. Each filter's result
is an ordinary value of the rendered document: it is never parsed as YAML nor rendered
again, so e.g. ``{{ text | to_yaml }}`` yields a string, not document structure.

Filters raise ``FilterError`` on bad input; the renderer reports it with the template
line, never a traceback.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import shlex
from collections.abc import Callable
from typing import Any

import yaml

_TRUE = frozenset({"true", "yes", "on", "y", "1", "t"})
_FALSE = frozenset({"false", "no", "off", "n", "0", "f", ""})


class FilterError(ValueError):
    """A filter got an argument it cannot handle."""


def to_bool(value: Any) -> bool:
    """Ansible's ``bool``: yes/no/on/off/true/false/1/0 (any case) and real booleans."""
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise FilterError(f"bool: cannot interpret {value!r} as a boolean")


def quote(value: Any) -> str:
    """Quote a value (or each item of a list, joined by spaces) for a POSIX shell."""
    if isinstance(value, list | tuple):
        return " ".join(shlex.quote(str(item)) for item in value)
    return shlex.quote("" if value is None else str(value))


def to_json(value: Any, indent: int | None = None, sort_keys: bool = False) -> str:
    try:
        return json.dumps(value, indent=indent, sort_keys=sort_keys, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise FilterError(f"to_json: {exc}") from None


def to_nice_json(value: Any, indent: int = 4) -> str:
    return to_json(value, indent=indent, sort_keys=True)


def to_yaml(value: Any, indent: int = 2) -> str:
    try:
        return yaml.safe_dump(
            value, default_flow_style=False, allow_unicode=True, indent=indent, sort_keys=False
        )
    except yaml.YAMLError as exc:
        raise FilterError(f"to_yaml: {exc}") from None


def from_json(value: Any) -> Any:
    try:
        return json.loads(str(value))
    except ValueError as exc:
        raise FilterError(f"from_json: {exc}") from None


def from_yaml(value: Any) -> Any:
    try:
        return yaml.safe_load(str(value))
    except yaml.YAMLError as exc:
        raise FilterError(f"from_yaml: {exc}") from None


def b64encode(value: Any, encoding: str = "utf-8") -> str:
    data = value if isinstance(value, bytes) else str(value).encode(encoding)
    return base64.b64encode(data).decode("ascii")


def b64decode(value: Any, encoding: str = "utf-8") -> str:
    try:
        return base64.b64decode(str(value), validate=True).decode(encoding)
    except (binascii.Error, ValueError) as exc:
        raise FilterError(f"b64decode: {exc}") from None


def _network(value: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(str(value), strict=False)
    except ValueError as exc:
        raise FilterError(f"not an IP network: {exc}") from None


def ipaddr(value: Any, query: str = "address") -> str | int:
    """Facts about a CIDR like ``192.168.100.1/24`` (a subset of Ansible's ``ipaddr``).

    ``address`` is the address as written (the network address for ``10.0.0.0/8``),
    ``network``, ``netmask``, ``prefix``, ``broadcast``, ``size``.
    """
    net = _network(value)
    if query == "address":
        text = str(value)
        return text.split("/", 1)[0] if "/" in text else str(net.network_address)
    answers: dict[str, Callable[[], str | int]] = {
        "network": lambda: str(net.network_address),
        "netmask": lambda: str(net.netmask),
        "prefix": lambda: net.prefixlen,
        "broadcast": lambda: str(net.broadcast_address),
        "size": lambda: net.num_addresses,
    }
    if query not in answers:
        known = ", ".join(["address", *answers])
        raise FilterError(f"ipaddr: unknown query {query!r} (known: {known})")
    return answers[query]()


def nthhost(value: Any, index: int) -> str:
    """The ``index``-th address of a network (negative counts from the end; -1 = broadcast)."""
    net = _network(value)
    try:
        return str(net[int(index)])
    except (IndexError, ValueError):
        raise FilterError(f"nthhost: {value} has no address number {index}") from None


FILTERS: dict[str, Callable[..., Any]] = {
    "bool": to_bool,
    "quote": quote,
    "to_json": to_json,
    "to_nice_json": to_nice_json,
    "to_yaml": to_yaml,
    "from_json": from_json,
    "from_yaml": from_yaml,
    "b64encode": b64encode,
    "b64decode": b64decode,
    "ipaddr": ipaddr,
    "nthhost": nthhost,
}
