"""``shlex.split(line, comments=True)`` in linear time.

``shlex`` grows each token one character at a time (``self.token += c``), which copies the
token on every character: a 1 MB host line took tens of seconds. This reads the same
POSIX grammar a run of characters at a time (one regex match or ``str.find`` per run), with
shlex's results and its two errors, for one line (the INI reader splits lines first).
"""

from __future__ import annotations

import re

_PLAIN = re.compile(r"[^ \t\r\n#'\"\\]+")  # in a bare word: up to a space, '#', a quote, '\'
_SPACE = re.compile(r"[ \t\r\n]+")
_IN_DOUBLE = re.compile(r'[^"\\]+')
_SPACES = " \t\r\n"


class _Line:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def escaped(self, inside_double: bool) -> str:
        # At a backslash: the escaped character (inside "...", only \ and " are escapes).
        nxt = self.pos + 1
        if nxt >= len(self.text):
            raise ValueError("No escaped character")
        char = self.text[nxt]
        self.pos = nxt + 1
        if inside_double and char not in '"\\':
            return "\\" + char
        return char

    def single(self) -> str:
        end = self.text.find("'", self.pos + 1)
        if end < 0:
            raise ValueError("No closing quotation")
        part = self.text[self.pos + 1 : end]
        self.pos = end + 1
        return part

    def double(self) -> str:
        parts: list[str] = []
        self.pos += 1
        text = self.text
        while self.pos < len(text):
            run = _IN_DOUBLE.match(text, self.pos)
            if run:
                parts.append(run.group())
                self.pos = run.end()
                continue
            if text[self.pos] == '"':
                self.pos += 1
                return "".join(parts)
            parts.append(self.escaped(inside_double=True))
        raise ValueError("No closing quotation")


def split_words(text: str) -> list[str]:
    """The words of one line, exactly as ``shlex.split(text, comments=True)`` gives them."""
    line = _Line(text)
    words: list[str] = []
    while True:
        space = _SPACE.match(text, line.pos)
        if space:
            line.pos = space.end()
        if line.pos >= len(text) or text[line.pos] == "#":
            return words
        parts: list[str] = []
        while line.pos < len(text) and text[line.pos] not in _SPACES:
            char = text[line.pos]
            if char == "#":
                words.append("".join(parts))
                return words  # a comment runs to the end of the line
            if char == "'":
                parts.append(line.single())
            elif char == '"':
                parts.append(line.double())
            elif char == "\\":
                parts.append(line.escaped(inside_double=False))
            else:
                run = _PLAIN.match(text, line.pos)
                assert run is not None
                parts.append(run.group())
                line.pos = run.end()
        words.append("".join(parts))
