"""The dispatch table: action name -> handler, loaded lazily.

``ACTIONS`` maps each action to a ``Handler`` (``handler(args, ctx) -> StepResult``). The
entries are ``LazyHandler`` objects that import their module on first use, so start-up only
pays for the actions a request uses. Another module registers more actions with
``register(name, module, function)``; libvirt actions plug in the same way, importing the
``libvirt`` bindings inside their own functions, never at module import.

An action module may also define ``check_args(args)``, raising ``ProtocolError`` (with the
argument's name as ``field``) for arguments the schema in ``protocol`` cannot express; the
request is then rejected before any step runs.
"""

from __future__ import annotations

import sys

from host_executor import protocol
from host_executor.errors import StepFailed
from host_executor.step import StepContext, StepResult

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every host start-up time; annotations are strings
    from types import ModuleType
    from typing import Any, Callable, Dict, Optional

    Handler = Callable[[Dict[str, Any], StepContext], StepResult]


class LazyHandler:
    """A handler that imports ``module`` (relative to this package) when first called."""

    __slots__ = ("_module", "function", "module")

    def __init__(self, module: str, function: str) -> None:
        self.module = module if "." in module else "host_executor.actions." + module
        self.function = function
        self._module: Optional[ModuleType] = None

    def load_module(self) -> ModuleType:
        if self._module is None:
            __import__(self.module)  # importlib itself costs start-up time
            self._module = sys.modules[self.module]
        return self._module

    def __call__(self, args: Dict[str, Any], ctx: StepContext) -> StepResult:
        handler: Handler = getattr(self.load_module(), self.function)
        return handler(args, ctx)

    def __repr__(self) -> str:
        return "<action %s:%s>" % (self.module, self.function)


ACTIONS: Dict[str, Handler] = {
    "command": LazyHandler("command", "run_command"),
    "shell": LazyHandler("command", "run_shell"),
    "file": LazyHandler("file", "run_file"),
    "wait": LazyHandler("wait", "run_wait"),
    "facts": LazyHandler("facts", "run_facts"),
    "image": LazyHandler("image", "run_image"),
    "image_list": LazyHandler("image", "run_image_list"),
    "cloud_init_seed": LazyHandler("cloud_init", "run_seed"),
    # The libvirt actions import the bindings (python3-libvirt) inside their functions.
    "libvirt_domain": LazyHandler("libvirt_domain", "run_domain"),
    "libvirt_network": LazyHandler("libvirt_network", "run_network"),
    "libvirt_pool": LazyHandler("libvirt_pool", "run_pool"),
    "libvirt_volume": LazyHandler("libvirt_volume", "run_volume"),
    "libvirt_snapshot": LazyHandler("libvirt_snapshot", "run_snapshot"),
    "libvirt_resize": LazyHandler("libvirt_resize", "run_resize"),
}


def register(name: str, module: str, function: str) -> None:
    """Add (or replace) an action, imported lazily from ``module``."""
    ACTIONS[name] = LazyHandler(module, function)


def _not_supported(args: Dict[str, Any], ctx: StepContext) -> StepResult:
    raise StepFailed(
        "action %s needs libvirt support, which this executor version does not have yet"
        % ctx.action
    )


def handler_for(action: str) -> Handler:
    """The handler of ``action``: a protocol action without one fails its step, clearly."""
    return ACTIONS.get(action, _not_supported)


def check_args(action: str, args: Dict[str, Any], prefix: str = "args") -> None:
    """Run the action module's own ``check_args``; fields come back as ``prefix.name``."""
    handler = ACTIONS.get(action)
    if not isinstance(handler, LazyHandler):
        return
    checker = getattr(handler.load_module(), "check_args", None)
    if checker is None:
        return
    try:
        checker(args)
    except protocol.ProtocolError as exc:
        exc.field = "%s.%s" % (prefix, exc.field) if exc.field else prefix
        raise
