"""hostplane's input errors as HTTP 422 bodies naming the field, like FastAPI's own:
``{"detail": [{"loc": ["body", "vars", "memory_mib"], "msg": "...", "type": "..."}]}``."""

from __future__ import annotations

from typing import Any

from control_server.errors import (
    ExtraVarsError,
    InputError,
    InventoryError,
    ParamError,
    PatternError,
    StepError,
    TemplateError,
    TemplateNotFound,
    UndefinedVariable,
)

Loc = list[str | int]


class RequestInvalid(Exception):
    """A request the models accepted but hostplane refuses: answered with a 422."""

    def __init__(self, loc: Loc, msg: str, kind: str = "value_error") -> None:
        super().__init__(msg)
        self.loc = loc
        self.msg = msg
        self.kind = kind

    def body(self) -> dict[str, Any]:
        return {"detail": [{"loc": self.loc, "msg": self.msg, "type": self.kind}]}


def field_of(exc: InputError) -> tuple[Loc, str]:
    """Where in the request body the fault lies, and the error's type name."""
    if isinstance(exc, ParamError):
        return ["body", "vars", exc.param], "param"
    if isinstance(exc, UndefinedVariable):
        return ["body", "vars", exc.variable], "undefined_variable"
    if isinstance(exc, TemplateNotFound):
        return ["body", "template"], "template_not_found"
    if isinstance(exc, StepError | ExtraVarsError):
        # A step is built from the template and the vars: the template is fine (it is
        # shipped or reviewed), so the values are what to look at.
        return ["body", "vars"], "step"
    if isinstance(exc, TemplateError):
        return ["body", "template"], "template"
    if isinstance(exc, PatternError | InventoryError):
        return ["body", "target"], "pattern"
    return ["body"], "input"


def from_input_error(exc: InputError) -> RequestInvalid:
    loc, kind = field_of(exc)
    return RequestInvalid(loc, str(exc), kind)
