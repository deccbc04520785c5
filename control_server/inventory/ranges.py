"""Host ranges: ``db[01:50]``, ``node[a:f]``, ``web[01:09:2]``, several in one name.

The expansion follows ansible-core's, quirks included: a zero-padded begin fixes the width,
letters come from ``a-zA-Z`` (so ``[a:Z]`` spans both cases), and the first range is
expanded before the rest, which gives the host order.
"""

from __future__ import annotations

import string

from control_server.inventory.addresses import AddressError, parse_address


class RangeError(ValueError):
    """A host range that ansible would refuse."""


def expand_hostname_range(name: str) -> list[str]:
    if not name:
        return []
    parts = name.replace("[", "|", 1).replace("]", "|", 1).split("|")
    if len(parts) != 3:
        raise RangeError(f"invalid host range in {name!r}: unbalanced brackets or '|'")
    head, body, tail = parts
    bounds = body.split(":")
    if len(bounds) not in (2, 3):
        raise RangeError("host range must be begin:end or begin:end:step")
    begin, end = bounds[0] or "0", bounds[1]
    step = bounds[2] if len(bounds) == 3 else "1"
    if not end:
        raise RangeError("host range must specify end value")
    width = 0
    if begin[0] == "0" and len(begin) > 1:
        width = len(begin)
        if width != len(end):
            raise RangeError("host range must specify equal-length begin and end formats")
    hosts: list[str] = []
    for item in _sequence(begin, end, step):
        expanded = head + (item.zfill(width) if width else item) + tail
        if "[" in expanded:
            hosts.extend(expand_hostname_range(expanded))
        else:
            hosts.append(expanded)
        if len(hosts) > _MAX_HOSTS:
            raise RangeError(f"host range in {name!r} expands to more than {_MAX_HOSTS} hosts")
    return hosts


def _sequence(begin: str, end: str, step: str) -> list[str]:
    letters = string.ascii_letters
    # str.index finds substrings, so 'ab' is a valid "letter" at 0: ansible does the same.
    if begin in letters and end in letters:
        first, last = letters.index(begin), letters.index(end)
        if first > last:
            raise RangeError("host range must have begin <= end")
        try:
            return list(letters[first : last + 1 : int(step)])
        except ValueError:
            pass  # a bad step falls through to the numeric reading, as in ansible
    try:
        numbers = range(int(begin), int(end) + 1, int(step))
    except ValueError as exc:
        raise RangeError(f"invalid host range [{begin}:{end}:{step}]: {exc}") from None
    if len(numbers) > _MAX_HOSTS:
        raise RangeError(
            f"host range [{begin}:{end}:{step}] expands to more than {_MAX_HOSTS} hosts"
        )
    return [str(n) for n in numbers]


# Far beyond any real fleet; keeps a typo like [1:9999999999] from eating all memory.
_MAX_HOSTS = 1_000_000


def expand_hostpattern(pattern: str) -> tuple[list[str], int | None]:
    """Host names and port of one inventory host entry."""
    try:
        host, port = parse_address(pattern, allow_ranges=True)
    except AddressError:
        host, port = pattern, None
    if "[" in host:
        return expand_hostname_range(host), port
    return [host], port
