"""hostplane's input errors as HTTP 422 bodies naming the field, like FastAPI's own:
``{"detail": [{"loc": ["body", "vars", "memory_mib"], "msg": "...", "type": "..."}]}``;
any other failure as a JSON 503 (the store is busy) or 500 saying what was being done."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
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
from control_server.store.failures import store_failure

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


class Failed(Exception):
    """A request that could not be served, naming what it was doing and its job; the
    cause (logged with its traceback) is never shown. ``status``: 503 when the job store
    is busy or unavailable (retry), 500 for anything else (a bug)."""

    def __init__(self, doing: str, cause: BaseException, job_id: int | None = None) -> None:
        reason = store_failure(cause)
        self.status = 500 if reason is None else 503
        what = (f"the job store is busy or unavailable ({reason})" if reason is not None
                else f"an internal error ({type(cause).__name__}, logged by serve)")
        super().__init__(f"{what} while {doing}")
        self.job_id = job_id
        self.cause = cause

    def body(self) -> dict[str, Any]:
        return {"detail": str(self), "job_id": self.job_id}


@contextmanager
def failing_as(doing: str, keep: tuple[type[Exception], ...], job_id: int | None = None
               ) -> Iterator[None]:
    """Turn any exception but the typed ones in ``keep`` (answered 4xx) into ``Failed``."""
    try:
        yield
    except keep:
        raise
    except Exception as exc:
        raise Failed(doing, exc, job_id) from exc
