"""The control server's error hierarchy.

Every error a user can cause is a ``HostplaneError``; the CLI prints its message and exits
with its ``exit_code`` (1 for bad input), never a traceback. Each error carries the data a
person needs to act: the file and line, the host, the step, the field.

    HostplaneError
    ├── InputError                  bad input from the user (exit 1)
    │   ├── InventoryError          file, line
    │   ├── PatternError            pattern
    │   ├── ExtraVarsError          source
    │   ├── TemplateError           template, line
    │   │   ├── TemplateNotFound    template, searched folders
    │   │   └── UndefinedVariable   variable, template, line
    │   ├── ParamError              param, expected
    │   └── StepError               host, step index/name, field
    ├── TransportError              host (connection-level trouble; the host is unreachable)
    │   ├── ConnectError            refused / timeout / dns
    │   ├── ChannelOpenError        no channel on an open connection (nothing ran)
    │   ├── AuthError               authentication failed
    │   └── HostKeyError            host key unknown or mismatched
    ├── ExecutorError               host (the executor misbehaved or spoke another protocol)
    └── LabError                    the Docker lab could not be set up
"""

from __future__ import annotations


class HostplaneError(Exception):
    """Base of every error hostplane reports to a person."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InputError(HostplaneError):
    """The user's input (inventory, pattern, template, vars) is wrong."""


def _where(file: str | None, line: int | None) -> str:
    if file is None:
        return ""
    return f"{file}:{line}: " if line is not None else f"{file}: "


class InventoryError(InputError):
    def __init__(self, message: str, file: str | None = None, line: int | None = None) -> None:
        super().__init__(f"{_where(file, line)}{message}")
        self.file = file
        self.line = line
        self.reason = message


class PatternError(InputError):
    def __init__(self, message: str, pattern: str) -> None:
        super().__init__(f"host pattern {pattern!r}: {message}")
        self.pattern = pattern


class ExtraVarsError(InputError):
    def __init__(self, message: str, source: str) -> None:
        super().__init__(f"extra vars {source!r}: {message}")
        self.source = source


class TemplateError(InputError):
    def __init__(
        self,
        message: str,
        template: str | None = None,
        line: int | None = None,
        host: str | None = None,
    ) -> None:
        prefix = ""
        if host is not None:
            prefix += f"host {host}: "
        if template is not None:
            prefix += f"template {template}"
            prefix += f" line {line}: " if line is not None else ": "
        super().__init__(prefix + message)
        self.template = template
        self.line = line
        self.host = host
        self.reason = message


class TemplateNotFound(TemplateError):
    def __init__(self, name: str, searched: list[str], hint: str = "") -> None:
        where = ", ".join(searched) or "(no template folders)"
        super().__init__(f"template {name!r} not found{hint} (searched: {where})")
        self.name = name
        self.searched = searched


class UndefinedVariable(TemplateError):
    def __init__(
        self, variable: str, template: str, line: int | None, host: str | None = None
    ) -> None:
        super().__init__(f"undefined variable {variable!r}", template, line, host)
        self.variable = variable


class ParamError(InputError):
    def __init__(self, param: str, expected: str, template: str | None = None) -> None:
        where = f"template {template}: " if template else ""
        super().__init__(f"{where}param {param!r}: {expected}")
        self.param = param
        self.expected = expected
        self.template = template


class StepError(InputError):
    def __init__(
        self,
        message: str,
        step: str | None = None,
        index: int | None = None,
        host: str | None = None,
        template: str | None = None,
    ) -> None:
        parts = []
        if host is not None:
            parts.append(f"host {host}")
        if template is not None:
            parts.append(f"template {template}")
        if index is not None or step is not None:
            label = f"step {index + 1}" if index is not None else "step"
            if step:
                label += f" ({step!r})"
            parts.append(label)
        prefix = ": ".join(parts)
        super().__init__(f"{prefix}: {message}" if prefix else message)
        self.step = step
        self.index = index
        self.host = host
        self.reason = message


class TransportError(HostplaneError):
    """A host could not be reached or talked to; the host is *unreachable*."""

    exit_code = 4
    kind = "unreachable"

    def __init__(self, message: str, host: str | None = None) -> None:
        super().__init__(f"{host}: {message}" if host else message)
        self.host = host
        self.reason = message


class ConnectError(TransportError):
    kind = "connect"


class ChannelOpenError(TransportError):
    """No channel could be opened on a connection (it died, or the server refused):
    nothing ran, so a pool may retry on a fresh connection."""


class AuthError(TransportError):
    kind = "auth"


class HostKeyError(TransportError):
    kind = "host_key"


class ExecutorError(HostplaneError):
    """The executor on a host broke the protocol or could not start."""

    exit_code = 2

    def __init__(self, message: str, host: str | None = None) -> None:
        super().__init__(f"{host}: {message}" if host else message)
        self.host = host
        self.reason = message


class LabError(HostplaneError):
    """The Docker lab could not be built, started or stopped."""
