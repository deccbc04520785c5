"""shared_library: one library per folder list, and it still sees every change."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from control_server.errors import TemplateError
from control_server.templating import shared_library

TEMPLATE = "{#\ndescription: a test template\nparams: {}\n#}\nsteps:\n  - name: one\n" \
    "    command: {argv: [echo, WORD]}\n"


def _write(path: Path, word: str) -> None:
    path.write_text(TEMPLATE.replace("WORD", word))


def _argv(folders: list[Path]) -> list[str]:
    seq = shared_library(folders).render("t", {}, "h1")
    return list(seq.steps[0]["args"]["argv"])


def test_same_library_and_edits_are_seen(tmp_path: Path) -> None:
    _write(tmp_path / "t.yaml.j2", "first")
    assert shared_library([tmp_path]) is shared_library([tmp_path])
    assert _argv([tmp_path])[-1] == "first"
    _write(tmp_path / "t.yaml.j2", "second")
    st = (tmp_path / "t.yaml.j2").stat()
    os.utime(tmp_path / "t.yaml.j2", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert _argv([tmp_path])[-1] == "second"


def test_a_file_appearing_in_an_earlier_folder_wins(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    _write(second / "t.yaml.j2", "later")
    assert _argv([first, second])[-1] == "later"
    _write(first / "t.yaml.j2", "earlier")
    assert _argv([first, second])[-1] == "earlier"


def test_a_removed_folder_is_an_error(tmp_path: Path) -> None:
    folder = tmp_path / "gone"
    folder.mkdir()
    _write(folder / "t.yaml.j2", "x")
    shared_library([folder])
    (folder / "t.yaml.j2").unlink()
    folder.rmdir()
    with pytest.raises(TemplateError, match="template folder not found"):
        shared_library([folder])
