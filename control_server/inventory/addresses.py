"""Host identifiers with an optional port, as ansible-core reads them.

A host entry may be a name, an IPv4 or IPv6 address, any of them carrying ``[x:y]``
ranges, followed by ``:port`` (IPv6 needs brackets for a port).  The exact grammar matters
because whatever fails it is kept verbatim as a host name, port included.
"""

from __future__ import annotations

import re

_NUMERIC_RANGE = r"\[[0-9]+:[0-9]+(?::[0-9]+)?\]"
_HEX_RANGE = r"\[[0-9a-f]+:[0-9a-f]+(?::[0-9]+)?\]"
_ALNUM_RANGE = r"\[(?:[a-z]:[a-z]|[0-9]+:[0-9]+)(?::[0-9]+)?\]"

_V6 = rf"(?:[0-9a-f]{{1,4}}|{_HEX_RANGE})"
_V4 = rf"(?:[01]?[0-9]{{1,2}}|2[0-4][0-9]|25[0-5]|{_NUMERIC_RANGE})"
_DOTTED = rf"(?:{_V4}\.){{3}}{_V4}"
_DOTTED_V6 = rf"(?:{_V6}\.){{3}}{_V6}"
_LABEL = rf"(?:\w|{_ALNUM_RANGE})(?:[\w-]|{_ALNUM_RANGE})*(?<![_-])"

_IPV6_FORMS = (
    rf"(?:{_V6}:){{7}}{_V6}",
    rf"(?:{_V6}:){{1,6}}:",
    rf"(?:{_V6}:)(?::{_V6}){{1,6}}",
    rf"(?:{_V6}:){{2}}(?::{_V6}){{1,5}}",
    rf"(?:{_V6}:){{3}}(?::{_V6}){{1,4}}",
    rf"(?:{_V6}:){{4}}(?::{_V6}){{1,3}}",
    rf"(?:{_V6}:){{5}}(?::{_V6}){{1,2}}",
    rf"(?:{_V6}:){{6}}(?::{_V6})",
    rf":(?::{_V6}){{1,6}}",
    rf"{_V6}?::",
    rf"(?:0:){{6}}{_DOTTED_V6}",
    rf"::(?:ffff:)?{_DOTTED_V6}",
    rf"(?:0:){{5}}ffff:{_DOTTED_V6}",
)

BRACKETED_HOSTPORT = re.compile(r"^\[(.+)\]:([0-9]+)$")
HOSTPORT = re.compile(r"^((?:[^:\[\]]|\[[^\]]*\])*):([0-9]+)$")


class _Lazy:
    """A regex compiled on its first use: these three take ~20 ms to compile, which every
    CLI start-up would pay, even one that reads no inventory."""

    def __init__(self, pattern: str, flags: int = 0) -> None:
        self.pattern, self.flags = pattern, flags
        self._compiled: re.Pattern[str] | None = None

    def match(self, text: str) -> re.Match[str] | None:
        if self._compiled is None:
            self._compiled = re.compile(self.pattern, self.flags)
        return self._compiled.match(text)


IPV4 = _Lazy(rf"^{_DOTTED}$", re.I)
IPV6 = _Lazy(rf"^(?:{'|'.join(_IPV6_FORMS)})$", re.I)
HOSTNAME = _Lazy(rf"^{_LABEL}(?:\.{_LABEL})*$", re.I)


class AddressError(ValueError):
    """Not a host identifier."""


def parse_address(address: str, allow_ranges: bool = False) -> tuple[str, int | None]:
    """Split ``address`` into (host, port); raise AddressError if it is no host identifier."""
    port: int | None = None
    # Both forms are tried in turn, so '[h:1]:2' yields host 'h' and port 1, like ansible.
    for form in (BRACKETED_HOSTPORT, HOSTPORT):
        match = form.match(address)
        if match:
            address, digits = match.groups()
            port = int(digits)
    # (Any form will do: a name first, so an inventory of names never compiles the others.)
    if not any(form.match(address) for form in (HOSTNAME, IPV4, IPV6)):
        raise AddressError(f"Not a valid network hostname: {address}")
    if not allow_ranges and "[" in address:
        raise AddressError("Detected range in host but was asked to ignore ranges")
    return address, port


def is_ip_address(name: str) -> bool:
    return bool(IPV4.match(name) or IPV6.match(name))


# ansible's C.INVALID_VARIABLE_NAMES: a leading digit or non-word, or any non-word char;
# ansible only warns about such group names (it could rename them, but not by default).
_INVALID_GROUP_CHARS = re.compile(r"^[\d\W]|[^\w]")


def has_invalid_group_chars(name: str) -> bool:
    return bool(_INVALID_GROUP_CHARS.search(name))
