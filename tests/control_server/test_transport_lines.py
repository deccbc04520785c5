"""Lines reassembled from chunks, however they are cut."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from control_server.transport.base import LineSplitter


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    lines: list[bytes] = []
    splitter = LineSplitter(lines.append)
    last = 0
    for cut in sorted(c % (len(data) + 1) for c in cuts):
        splitter.feed(data[last:cut])
        last = cut
    splitter.feed(data[last:])
    splitter.close()
    return lines


@given(st.lists(st.binary(max_size=50).map(lambda b: b.replace(b"\n", b"")), max_size=8),
       st.lists(st.integers(min_value=0), max_size=10), st.booleans())
def test_any_cut_gives_the_same_lines(parts: list[bytes], cuts: list[int], tail: bool) -> None:
    data = b"".join(p + b"\n" for p in parts) + (b"partial" if tail else b"")
    expected = [p + b"\n" for p in parts] + ([b"partial"] if tail else [])
    assert _split(data, cuts) == expected


def test_a_line_of_several_megabytes_arrives_whole() -> None:
    big = b"x" * (5 << 20)
    lines = _split(big + b"\nnext\n", list(range(0, 6 << 20, 65536)))
    assert lines == [big + b"\n", b"next\n"]
