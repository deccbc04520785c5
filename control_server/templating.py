"""Command templates: finding them, rendering them safely, checking what they produce.

The only module that imports Jinja2. See ``docs/templates.md`` for the template format
and ``control_server.template_doc`` for how values are kept out of the YAML structure.

Rendering, in short:

* variables = the caller's mapping (inventory vars, extra vars winning) + the params
  (checked, coerced, defaults applied) + ``inventory_hostname``;
* the outer template (``NAME.yaml.j2``) renders with StrictUndefined in a sandbox; every
  ``{{ expression }}`` outputs a placeholder token, never the value's text. Text the
  template itself writes (literal text, and what macros, ``{% set %}`` blocks,
  ``super()`` and ``caller()`` return) stays template text;
* ``partial('domain.xml.j2', key=value)`` renders ``partials/domain.xml.j2`` in a
  separate, XML-autoescaping environment with the same variables; its result is ONE
  value of the outer document;
* the text is parsed as YAML, the tokens are replaced by the values, every step is
  converted to the wire form and validated against ``host_executor.protocol``.
"""

from __future__ import annotations

import collections.abc as cabc
import difflib
import functools
import re
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment
from jinja2.utils import pass_context
from markupsafe import Markup

from command_templates import TEMPLATES_DIR
from control_server.errors import (
    HostplaneError,
    TemplateError,
    TemplateNotFound,
    UndefinedVariable,
)
from control_server.params import ParamSpec, resolve_params
from control_server.sequence import (
    Sequence,
    redact,
    secret_strings,
    secret_values,
    steps_to_wire,
)
from control_server.template_doc import Placeholders, load_document, parse_header
from control_server.template_filters import FILTERS, FilterError

SUFFIX = ".yaml.j2"
PARTIALS = "partials"
_TEMPLATE_NAME = re.compile(r"[A-Za-z0-9_-]+")
_PARTIAL_NAME = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")
_UNDEFINED = re.compile(r"'([^']*)' is undefined")

# The placeholders of the render running in this thread/task (None outside a render).
_CURRENT: ContextVar[Placeholders | None] = ContextVar("hostplane_placeholders", default=None)


@dataclass(frozen=True)
class TemplateInfo:
    name: str
    path: Path
    description: str
    params: tuple[ParamSpec, ...]


class TemplateText(str):
    """Text assembled by the template itself (its buffers): structure, not a value."""


def _template_concat(parts: cabc.Iterable[str]) -> str:
    return TemplateText("".join(parts))


def _indent(value: Any, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
    # Indenting template text (a macro's YAML) only moves template-written lines: the
    # values are still tokens then. So it stays template text, which is what makes
    # ``{{ my_macro() | indent(4) }}`` usable in YAML.
    out = jinja2.filters.do_indent(str(value), width, first, blank)
    return TemplateText(out) if isinstance(value, TemplateText) else out


def _resolving(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a filter so template text it gets has its tokens replaced by the values first."""

    @functools.wraps(fn)  # also copies jinja's pass_context/pass_environment marker
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ph = _CURRENT.get()
        if ph is not None:
            args = tuple(ph.resolve_deep(a) for a in args)
            kwargs = {k: ph.resolve_deep(v) for k, v in kwargs.items()}
        return fn(*args, **kwargs)

    return wrapper


@pass_context
def _finalize(context: jinja2.runtime.Context, value: Any) -> Any:
    """Output of every ``{{ expression }}`` in the outer template: a token, not the value."""
    if isinstance(value, jinja2.Undefined):
        # StrictUndefined raises here, naming the variable; the lenient Undefined Jinja
        # uses for a conditional expression's missing else prints nothing.
        return str(value)
    ph = _CURRENT.get()
    if ph is None or isinstance(value, TemplateText):
        return value
    return ph.token(value)


def _mandatory(value: Any, msg: str | None = None) -> Any:
    if isinstance(value, jinja2.Undefined):
        if msg:
            raise FilterError(msg)
        raise jinja2.UndefinedError(f"{value._undefined_name!r} is undefined")
    return value


def _unchanged(path: Path, mtime: int, earlier: tuple[Path, ...] = ()) -> bool:
    """Jinja2's up-to-date check: same file, same mtime, and no earlier folder has gained a
    file of that name meanwhile (a shared library lives as long as serve)."""
    try:
        return path.stat().st_mtime_ns == mtime and not any(p.is_file() for p in earlier)
    except OSError:
        return False


class _FolderLoader(jinja2.BaseLoader):
    """Loads ``name`` from the first folder holding it; records each file's display name."""

    def __init__(self, folders: list[Path], prefix: str, files: dict[str, str]) -> None:
        self.folders = folders
        self.prefix = prefix
        self.files = files

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str, Callable[[], bool]]:
        pieces = jinja2.loaders.split_template_path(template)  # refuses '..'
        for index, folder in enumerate(self.folders):
            path = folder.joinpath(*pieces)
            if path.is_file():
                mtime = path.stat().st_mtime_ns
                source = path.read_text(encoding="utf-8")
                filename = str(path)
                display = template[: -len(SUFFIX)] if template.endswith(SUFFIX) else template
                self.files[filename] = self.prefix + display
                earlier = tuple(f.joinpath(*pieces) for f in self.folders[:index])
                return source, filename, functools.partial(_unchanged, path, mtime, earlier)
        raise jinja2.TemplateNotFound(template)


class _YamlEnvironment(SandboxedEnvironment):
    concat = staticmethod(_template_concat)

    def _parse(self, source: str, name: str | None, filename: str | None) -> jinja2.nodes.Template:
        tree = super()._parse(source, name, filename)
        # A filter block writes its result without finalize: values would land in the YAML
        # text. Refuse it; a filter on an expression does the same job safely.
        for node in tree.find_all(jinja2.nodes.FilterBlock):
            raise jinja2.TemplateSyntaxError(
                "{% filter %} blocks are not supported in command templates; "
                "apply the filter to an expression instead",
                node.lineno,
                name,
                filename,
            )
        return tree

    def call(
        __self, __context: jinja2.runtime.Context, __obj: Any, *args: Any, **kwargs: Any
    ) -> Any:
        # {% call x() %} writes x's result straight into the YAML text: only a macro's
        # result is template text, anything else (a method of a value...) is refused.
        if "caller" in kwargs and not isinstance(__obj, jinja2.runtime.Macro):
            raise jinja2.exceptions.SecurityError("{% call %} works with macros only")
        return super().call(__context, __obj, *args, **kwargs)


def _environment(cls: type[SandboxedEnvironment], loader: jinja2.BaseLoader, **options: Any) -> SandboxedEnvironment:
    env = cls(
        loader=loader,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        extensions=["jinja2.ext.do", "jinja2.ext.loopcontrols"],
        **options,
    )
    env.filters.update(FILTERS)
    env.filters["mandatory"] = _mandatory
    return env


class _Engine:
    """The two Jinja environments of a library, and the mapping of Jinja errors."""

    def __init__(self, folders: list[Path]) -> None:
        self.files: dict[str, str] = {}
        self.yaml_env = _environment(
            _YamlEnvironment, _FolderLoader(folders, "", self.files), finalize=_finalize
        )
        for name, fn in list(self.yaml_env.filters.items()):
            self.yaml_env.filters[name] = _resolving(fn)
        self.yaml_env.filters["indent"] = _indent
        self.yaml_env.globals["partial"] = self._outer_partial
        partial_dirs = [folder / PARTIALS for folder in folders]
        self.xml_env = _environment(
            SandboxedEnvironment,
            _FolderLoader(partial_dirs, PARTIALS + "/", self.files),
            autoescape=True,
        )
        self.xml_env.globals["partial"] = self._inner_partial

    def _render_partial(self, name: str, variables: dict[str, Any]) -> str:
        if not isinstance(name, str) or not _PARTIAL_NAME.fullmatch(name):
            raise FilterError(f"partial: bad name {name!r} (a file name in partials/)")
        try:
            template = self.xml_env.get_template(name)
        except jinja2.TemplateNotFound:
            raise FilterError(f"partial {name!r} not found in any partials/ folder") from None
        return str(template.render(variables))

    @pass_context
    def _outer_partial(self, context: jinja2.runtime.Context, name: str, **extra: Any) -> str:
        ph = _CURRENT.get()
        variables = {**context.get_all(), **extra}
        if ph is not None:
            # Template text captured in the outer template still holds tokens: give the
            # partial the real text, which it then escapes like any value.
            variables = {k: ph.resolve_deep(v) for k, v in variables.items()}
        return self._render_partial(name, variables)

    @pass_context
    def _inner_partial(self, context: jinja2.runtime.Context, name: str, **extra: Any) -> str:
        return Markup(self._render_partial(name, {**context.get_all(), **extra}))

    def render(self, filename: str, variables: dict[str, Any], ph: Placeholders) -> str:
        template = self.yaml_env.get_template(filename)
        token = _CURRENT.set(ph)
        try:
            return str(template.render(variables))
        finally:
            _CURRENT.reset(token)

    def locate(self, tb: TracebackType | None) -> tuple[str | None, int | None]:
        """The innermost template frame of a traceback: (display name, line)."""
        where: tuple[str | None, int | None] = (None, None)
        while tb is not None:
            display = self.files.get(tb.tb_frame.f_code.co_filename)
            if display is not None:
                where = (display, tb.tb_lineno)
            tb = tb.tb_next
        return where


def _render_error(exc: Exception, engine: _Engine, template: str, host: str) -> TemplateError:
    """Turn anything a render raised into a TemplateError naming template and line."""
    if isinstance(exc, jinja2.TemplateSyntaxError):
        name = engine.files.get(exc.filename or "", exc.name or template)
        return TemplateError(f"syntax error: {exc.message}", name, exc.lineno, host)
    where, line = engine.locate(exc.__traceback__)
    where = where or template
    if isinstance(exc, jinja2.UndefinedError):
        match = _UNDEFINED.fullmatch(str(exc.message))
        if match is not None:
            return UndefinedVariable(match.group(1), where, line, host)
        return TemplateError(str(exc.message), where, line, host)
    if isinstance(exc, jinja2.TemplateNotFound):
        return TemplateError(f"included template {exc.name!r} not found", where, line, host)
    if isinstance(exc, HostplaneError):
        return TemplateError(getattr(exc, "reason", exc.message), where, line, host)
    if isinstance(exc, FilterError | jinja2.TemplateError):
        return TemplateError(str(exc), where, line, host)
    return TemplateError(f"{type(exc).__name__}: {exc}", where, line, host)


def _hide(exc: HostplaneError, secrets: frozenset[str]) -> HostplaneError:
    # A message may quote a value (a failing filter's input, say); a secret never shows.
    shown = redact(exc.message, secrets)
    if shown != exc.message:
        exc.message = shown
        exc.args = (shown,)
    return exc


class TemplateLibrary:
    """The templates of ``--templates`` folders (searched first, in order), then the shipped."""

    def __init__(self, extra_dirs: cabc.Sequence[Path] = ()) -> None:
        folders = [Path(d).expanduser() for d in extra_dirs]
        for folder in folders:
            if not folder.is_dir():
                raise TemplateError(f"template folder not found: {folder}")
        self.folders = [*folders, TEMPLATES_DIR]
        self._engine = _Engine(self.folders)
        self._headers: dict[Path, tuple[tuple[int, int], TemplateInfo]] = {}

    def _searched(self) -> list[str]:
        return [str(folder) for folder in self.folders]

    def _find(self, name: str) -> Path:
        if not isinstance(name, str) or not _TEMPLATE_NAME.fullmatch(name):
            raise TemplateError(
                f"invalid template name {name!r}: use only letters, digits, '_' and '-'"
            )
        for folder in self.folders:
            path = folder / (name + SUFFIX)
            if path.is_file():
                return path
        close = difflib.get_close_matches(name, self._names(), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise TemplateNotFound(name, self._searched(), hint)

    def _names(self) -> list[str]:
        return sorted({p.name[: -len(SUFFIX)] for f in self.folders for p in f.glob("*" + SUFFIX)})

    def _info(self, name: str, path: Path) -> TemplateInfo:
        stat = path.stat()
        key = (stat.st_mtime_ns, stat.st_size)
        cached = self._headers.get(path)
        if cached is not None and cached[0] == key:
            return cached[1]
        try:
            source = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise TemplateError(f"cannot read {path}: {exc}", name) from None
        description, params = parse_header(source, name)
        info = TemplateInfo(name, path, description, params)
        self._headers[path] = (key, info)
        return info

    def get(self, name: str) -> TemplateInfo:
        """The template's header (description, params); ``TemplateNotFound`` if none."""
        return self._info(name, self._find(name))

    def list(self) -> list[TemplateInfo]:
        """Every template, a name found in an earlier folder hiding later ones."""
        found: dict[str, Path] = {}
        for folder in self.folders:
            for path in sorted(folder.glob("*" + SUFFIX)):
                name = path.name[: -len(SUFFIX)]
                if _TEMPLATE_NAME.fullmatch(name) and name not in found:
                    found[name] = path
        return [self._info(name, found[name]) for name in sorted(found)]

    def render(self, name: str, variables: Mapping[str, Any], host: str) -> Sequence:
        """Render ``name`` for ``host`` and check it: params, YAML, every step."""
        info = self.get(name)
        params = resolve_params(info.params, variables, template=name)
        secrets = secret_strings(info.params, params)
        context = {**variables, **params, "inventory_hostname": host}
        ph = Placeholders()
        try:
            try:
                text = self._engine.render(info.path.name, context, ph)
            except Exception as exc:
                raise _render_error(exc, self._engine, name, host) from None
            doc = load_document(text, ph, name, host)
            steps = steps_to_wire(doc["steps"], name, host)
        except HostplaneError as exc:
            raise _hide(exc, secrets) from None
        return Sequence(
            template=name,
            host=host,
            description=info.description,
            params=params,
            lock=doc["lock"],
            on_failure=doc["on_failure"],
            steps=steps,
            secrets=secrets,
            secret_values=secret_values(info.params, params),
        )


_SHARED: dict[tuple[Path, ...], TemplateLibrary] = {}


def shared_library(extra_dirs: cabc.Sequence[Path] = ()) -> TemplateLibrary:
    """One library per list of folders for the whole process, so its Jinja2 environment
    keeps the compiled templates across runs and jobs (serve). Both caches check the files
    again on use (mtime; a file appearing in an earlier folder), so edits are seen."""
    key = tuple(Path(d).expanduser() for d in extra_dirs)
    library = _SHARED.get(key)
    if library is None or not all(folder.is_dir() for folder in key):
        library = TemplateLibrary(key)  # (says which folder is missing)
        if len(_SHARED) >= 16:
            _SHARED.clear()
        _SHARED[key] = library
    return library
