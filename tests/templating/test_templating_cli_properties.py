"""Property tests through the CLI: whatever ``-e`` value and whatever template text,
``hostplane render`` exits 0 or 1 with a message, never 70 ("internal error") and never a
traceback. (HOSTPLANE_FUZZ_EXAMPLES=600 for a longer search.)"""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_templating_errors import FRAGMENTS

from control_server.cli import main

_settings = settings(max_examples=int(os.environ.get("HOSTPLANE_FUZZ_EXAMPLES", 60)),
                     deadline=None,
                     suppress_health_check=[HealthCheck.too_slow,
                                            HealthCheck.function_scoped_fixture])

TEMPLATE = """\
{#
description: echo
params:
  v: {}
  n: {type: int, default: 1}
#}
steps:
  - name: echo {{ v }}
    command: {argv: [echo, "{{ v }}"], env: {V: "{{ v }}"}, cwd: "/tmp/{{ v }}"}
    timeout: {{ n }}
  - name: file
    file: {path: "/tmp/{{ v }}", content: "{{ v }}"}
"""

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                max_size=3),
    max_leaves=10,
)
_values = st.one_of(
    st.text(max_size=30),  # k=v words, @files, inline YAML: whatever it is
    st.builds(lambda v: "v=" + v, st.text(max_size=20)),
    st.builds(lambda v: json.dumps({"v": v}), _json),  # NaN, nested lists, NUL, ...
    st.builds(lambda d, v: '{"v": ' + "[" * d + json.dumps(v) + "]" * d + "}",
              st.integers(0, 3000), st.text(max_size=3)),
    st.builds(lambda v: json.dumps({"n": v, "v": "x"}), _json),
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("render")
    (root / "tpl" / "partials").mkdir(parents=True)
    (root / "tpl" / "echo.yaml.j2").write_text(TEMPLATE)
    (root / "tpl" / "partials" / "p.xml.j2").write_text("<p>{{ name }}</p>")
    (root / "local.ini").write_text("[here]\nlocalhost ansible_connection=local\n")
    return root


def _hostplane(*args: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    code: object = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code
    return (code if isinstance(code, int) else 1), out.getvalue() + err.getvalue()


def _check(code: int, output: str) -> None:
    assert code in (0, 1), (code, output)
    assert "Traceback" not in output and "internal error" not in output, output


@_settings
@given(values=st.lists(_values, min_size=1, max_size=3))
def test_any_extra_vars_render_or_fail_cleanly(folder: Path, values: list[str]) -> None:
    args = [arg for value in values for arg in ("-e", value)]
    _check(*_hostplane("render", "-i", str(folder / "local.ini"), "--templates",
                       str(folder / "tpl"), "all", "echo", "-e", "v=x", *args))


@_settings
@given(parts=st.lists(st.sampled_from([*FRAGMENTS, "\x00", "\udc80", "{{ v }}", ".nan"]),
                      max_size=20),
       value=st.text(max_size=8))
def test_any_template_text_renders_or_fails_cleanly(folder: Path, parts: list[str],
                                                    value: str) -> None:
    path = folder / "tpl" / "fuzz.yaml.j2"
    path.write_bytes("".join(parts).encode("utf-8", "surrogateescape"))
    _check(*_hostplane("render", "-i", str(folder / "local.ini"), "--templates",
                       str(folder / "tpl"), "all", "fuzz", "-e", json.dumps({"name": value})))
