"""Which ``-e`` extra vars a template will never read, and "did you mean" suggestions.

``-e memory=lots`` on a template whose param is ``memory_mib`` was silently ignored; a
var that is neither a param nor named in the template's text (or any partial, which sees
every variable) is worth one warning line. Only extra vars are checked: inventory vars and
``ansible_*`` connection settings are there for other readers.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

import jinja2
from jinja2 import meta

from control_server.templating import PARTIALS, TemplateLibrary

# Read by hostplane itself (the connection, the run), never by the template text.
_NOT_FOR_TEMPLATES = ("ansible_", "hostplane_")


def suggest(name: str, candidates: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest candidate, or nothing."""
    close = difflib.get_close_matches(name, sorted(set(candidates)), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _names_in(env: jinja2.Environment, source: str) -> set[str]:
    try:
        return set(meta.find_undeclared_variables(env.parse(source)))
    except jinja2.TemplateSyntaxError:
        return set()  # the render reports it, with its line


def used_names(library: TemplateLibrary, name: str) -> set[str]:
    """Params and every variable the template or a partial names."""
    info = library.get(name)
    # The extensions the library's environments load, so their tags parse here too.
    env = jinja2.Environment(extensions=["jinja2.ext.do", "jinja2.ext.loopcontrols"])
    names = {spec.name for spec in info.params}
    names |= _names_in(env, info.path.read_text(encoding="utf-8"))
    for folder in library.folders:
        for partial in sorted((folder / PARTIALS).glob("*.j2")):
            try:
                names |= _names_in(env, partial.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError):
                continue
    return names


def unused_extra_vars(library: TemplateLibrary, name: str, extra: Iterable[str]) -> str | None:
    """One warning line naming the extra vars ``name`` never reads, or ``None``."""
    wanted = [v for v in extra if not v.startswith(_NOT_FOR_TEMPLATES)]
    if not wanted:
        return None
    used = used_names(library, name)
    params = [spec.name for spec in library.get(name).params]
    unused = [v for v in wanted if v not in used]
    if not unused:
        return None
    shown = ", ".join(f"{v!r}{suggest(v, params or used)}" for v in unused)
    return f"extra vars not used by template {name} (neither params nor in its text): {shown}"
