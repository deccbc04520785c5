"""Constants and types shared by the template tests (a unique module name: see conftest)."""

from __future__ import annotations

from collections.abc import Callable

from control_server.templating import TemplateLibrary

HOST = "hv1"
HOST_VARS = {"ansible_host": "10.0.0.11", "rack": "r3"}

WriteTemplate = Callable[..., TemplateLibrary]
