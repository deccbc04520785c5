"""Fixtures for the template tests: the shipped library and throwaway template folders."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from control_server.templating import TemplateLibrary

HOST = "hv1"
HOST_VARS = {"ansible_host": "10.0.0.11", "rack": "r3"}

WriteTemplate = Callable[..., TemplateLibrary]


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
