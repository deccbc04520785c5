"""Fixtures for the template tests: the shipped library and throwaway template folders.

Shared constants live in ``templating_helpers`` (tests import that, never ``conftest``,
whose module name other test folders share).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from templating_helpers import WriteTemplate

from control_server.templating import TemplateLibrary


@pytest.fixture(scope="session")
def shipped() -> TemplateLibrary:
    return TemplateLibrary()


@pytest.fixture
def make_lib(tmp_path: Path) -> WriteTemplate:
    """Write templates (name -> text, dedented) and partials, return a library over them."""

    def make(templates: dict[str, str], partials: dict[str, str] | None = None) -> TemplateLibrary:
        for name, text in templates.items():
            (tmp_path / f"{name}.yaml.j2").write_text(textwrap.dedent(text).lstrip("\n"))
        if partials:
            (tmp_path / "partials").mkdir(exist_ok=True)
            for name, text in partials.items():
                (tmp_path / "partials" / name).write_text(textwrap.dedent(text).lstrip("\n"))
        return TemplateLibrary([tmp_path])

    return make
