"""Every bad input is a HostplaneError whose message says what and where, never a traceback."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from templating_helpers import HOST, WriteTemplate

from control_server.errors import (
    HostplaneError,
    ParamError,
    StepError,
    TemplateError,
    TemplateNotFound,
    UndefinedVariable,
)
from control_server.templating import TemplateLibrary

HEADER = """\
{#
description: test
params:
  name: {required: true, pattern: '[a-z][a-z0-9-]*'}
  count: {type: int, default: 1, min: 1, max: 9}
  mode: {choices: [fast, slow], default: fast}
#}
"""


def _one(make_lib: WriteTemplate, body: str, partials: dict[str, str] | None = None) -> TemplateLibrary:
    return make_lib({"t": HEADER + body}, partials)


def test_undefined_variable_names_variable_template_and_line(make_lib: WriteTemplate) -> None:
    lib = _one(make_lib, "steps:\n  - name: x\n    command: {argv: [echo, '{{ nope }}']}\n")
    with pytest.raises(UndefinedVariable) as info:
        lib.render("t", {"name": "a"}, HOST)
    err = info.value
    assert (err.variable, err.template, err.line, err.host) == ("nope", "t", 10, HOST)
    assert str(err) == "host hv1: template t line 10: undefined variable 'nope'"


def test_undefined_variable_in_control_flow(make_lib: WriteTemplate) -> None:
    body = "steps:\n{% for x in items %}\n  - name: '{{ x }}'\n{% endfor %}\n"
    with pytest.raises(UndefinedVariable) as info:
        _one(make_lib, body).render("t", {"name": "a"}, HOST)
    assert (info.value.variable, info.value.line) == ("items", 9)


def test_undefined_variable_in_partial(make_lib: WriteTemplate) -> None:
    lib = _one(
        make_lib,
        "steps:\n  - name: x\n    file: {path: /x, content: \"{{ partial('p.xml.j2') }}\"}\n",
        {"p.xml.j2": "<a>\n  <b>{{ missing_thing }}</b>\n</a>\n"},
    )
    with pytest.raises(UndefinedVariable) as info:
        lib.render("t", {"name": "a"}, HOST)
    assert info.value.template == "partials/p.xml.j2"
    assert (info.value.variable, info.value.line) == ("missing_thing", 2)


def test_mandatory_filter(make_lib: WriteTemplate) -> None:
    lib = _one(make_lib, "steps:\n  - name: '{{ zone | mandatory }}'\n    facts: {}\n")
    with pytest.raises(UndefinedVariable) as info:
        lib.render("t", {"name": "a"}, HOST)
    assert (info.value.variable, info.value.line) == ("zone", 9)
    lib = _one(make_lib, "steps:\n  - name: '{{ zone | mandatory(\"set zone\") }}'\n    facts: {}\n")
    with pytest.raises(TemplateError, match="line 9: set zone"):
        lib.render("t", {"name": "a"}, HOST)


def test_missing_attribute(make_lib: WriteTemplate) -> None:
    lib = _one(make_lib, "steps:\n  - name: '{{ net.bridge }}'\n    facts: {}\n")
    with pytest.raises(TemplateError, match=r"line 9: .*has no attribute 'bridge'"):
        lib.render("t", {"name": "a", "net": {"cidr": "x"}}, HOST)


def test_syntax_error_line(make_lib: WriteTemplate) -> None:
    lib = _one(make_lib, "steps:\n{% if name %}\n  - name: x\n    facts: {}\n")
    with pytest.raises(TemplateError) as info:
        lib.render("t", {"name": "a"}, HOST)
    assert info.value.template == "t"
    assert info.value.line == 10
    assert "syntax error" in str(info.value) and "endif" in str(info.value)


def test_syntax_error_in_partial(make_lib: WriteTemplate) -> None:
    lib = _one(
        make_lib,
        "steps:\n  - name: x\n    file: {path: /x, content: \"{{ partial('p.xml.j2') }}\"}\n",
        {"p.xml.j2": "<a>\n{{ name }\n</a>\n"},
    )
    with pytest.raises(TemplateError) as info:
        lib.render("t", {"name": "a"}, HOST)
    assert (info.value.template, info.value.line) == ("partials/p.xml.j2", 2)


def test_runtime_error_has_line(make_lib: WriteTemplate) -> None:
    lib = _one(make_lib, "steps:\n  - name: x\n    command: {argv: [echo, '{{ count / 0 }}']}\n")
    with pytest.raises(TemplateError, match="template t line 10: ZeroDivisionError"):
        lib.render("t", {"name": "a"}, HOST)


def test_sandbox_refuses_internals(make_lib: WriteTemplate) -> None:
    lib = _one(make_lib, "steps:\n  - name: \"{{ ''.__class__.__mro__ }}\"\n    facts: {}\n")
    with pytest.raises(TemplateError, match=r"line 9: .*unsafe"):
        lib.render("t", {"name": "a"}, HOST)


def test_rendered_yaml_error_names_rendered_line(make_lib: WriteTemplate) -> None:
    lib = _one(make_lib, "steps:\n  - name: {{ name }}\n   facts: {}\n")
    with pytest.raises(TemplateError) as info:
        lib.render("t", {"name": "a"}, HOST)
    message = str(info.value)
    assert "not valid YAML at line 3 of the rendered text" in message
    assert "'facts: {}'" in message


def test_header_yaml_error_names_file_line(make_lib: WriteTemplate) -> None:
    lib = make_lib({"t": "{#\ndescription: x\nparams:\n  a: {type: int\n#}\nsteps: []\n"})
    with pytest.raises(TemplateError) as info:
        lib.get("t")
    assert info.value.template == "t" and info.value.line == 5
    assert "header is not valid YAML" in str(info.value)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("params:\n  a: {requried: true}", "param 'a': unknown key 'requried'"),
        ("params:\n  a: {type: number}", "param 'a': unknown type 'number'"),
        ("params:\n  a: {type: int, default: many}", "param 'a': bad default: expected an integer"),
        ("params:\n  a: {required: true, default: 1}", "cannot have a default"),
        ("params:\n  a-b: {}", "'a-b' is not a valid variable name"),
        ("params:\n  a: {pattern: '('}", "param 'a': bad pattern"),
        ("params: [a, b]", "params must be a mapping"),
        ("steps: []", "unknown header key 'steps'"),
    ],
)
def test_bad_param_declarations(make_lib: WriteTemplate, header: str, message: str) -> None:
    lib = make_lib({"t": "{#\n" + header + "\n#}\nsteps: []\n"})
    with pytest.raises(TemplateError, match=message.replace("(", r"\(")):
        lib.get("t")


@pytest.mark.parametrize(
    ("variables", "param", "expected"),
    [
        ({}, "name", "required param is missing"),
        ({"name": "A"}, "name", "expected a value matching the pattern '[a-z][a-z0-9-]*', got 'A'"),
        ({"name": "a", "count": "3x"}, "count", "expected an integer, got '3x'"),
        ({"name": "a", "count": True}, "count", "expected an integer, got True"),
        ({"name": "a", "count": "10"}, "count", "expected at most 9, got 10"),
        ({"name": "a", "count": 0}, "count", "expected at least 1, got 0"),
        ({"name": "a", "mode": "medium"}, "mode", "expected one of fast, slow, got 'medium'"),
        ({"name": ["a"]}, "name", "expected a string, got ['a']"),
    ],
)
def test_bad_params(make_lib: WriteTemplate, variables: dict[str, object], param: str, expected: str) -> None:
    lib = _one(make_lib, "steps: []\n")
    with pytest.raises(ParamError) as info:
        lib.render("t", variables, HOST)
    assert (info.value.param, info.value.expected) == (param, expected)
    assert str(info.value) == f"template t: param {param!r}: {expected}"


def test_unknown_action_names_step_and_suggests(make_lib: WriteTemplate) -> None:
    lib = _one(make_lib, "steps:\n  - name: ok\n    facts: {}\n  - name: run it\n    comand: {argv: [ls]}\n")
    with pytest.raises(StepError) as info:
        lib.render("t", {"name": "a"}, HOST)
    assert str(info.value) == (
        "host hv1: template t: step 2 ('run it'): unknown action 'comand' (did you mean 'command'?)"
    )
    assert (info.value.step, info.value.index) == ("run it", 1)


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ("command: {argv: ls}", "step 1 ('s'): args.argv: expected list, got str"),
        ("command: {argv: [ls], creats: /x}", "step 1 ('s'): args.creats: unknown argument 'creats'"),
        ("libvirt_domain: {state: running}", "step 1 ('s'): args.name: required argument"),
        ("libvirt_domain: {name: x, state: up}", "step 1 ('s'): args.state: expected one of"),
        ("facts: {}\n    timeout: -1", "step 1 ('s'): timeout: expected a positive number"),
        ("facts: {}\n    command: {argv: [ls]}", "step 1 ('s'): more than one action (facts, command)"),
        ("timeout: 3", "step 1 ('s'): no action"),
        ("facts: [cpu]", "step 1 ('s'): the arguments of facts must be a mapping"),
        ("facts: {}\n    when: maybe", "step 1 ('s'): when: expected true or false"),
        ("facts: {}\n    undo: {comand: {}}", "step 1 ('s'): undo: unknown action 'comand'"),
        ("facts: {}\n    undo: {file: {state: absent}}", "step 1 ('s'): undo.args.path: required"),
        ("facts: {}\n    timeout: .nan", "step 1 ('s'): timeout: expected a positive number"),
        ("facts: {}\n    timeout: .inf", "step 1 ('s'): timeout: expected a positive number"),
        ("command: {argv: [ls], env: {A: [1, 2]}}", "step 1 ('s'): args.env.A: expected a string, got list"),
        ("command: {argv: [ls], env: {A: {b: 1}}}", "step 1 ('s'): args.env.A: expected a string"),
        ("command: {argv: ['a{{ nul }}b']}", "step 1 ('s'): args.argv[0]: contains a NUL character"),
        ("command: {argv: [ls], cwd: '/{{ nul }}'}", "step 1 ('s'): args.cwd: contains a NUL"),
        ("command: {argv: [ls], env: {A: '{{ sur }}'}}", "step 1 ('s'): args.env.A: contains a lone surrogate"),
        ("file: {path: '/tmp/{{ nul }}'}", "step 1 ('s'): args.path: contains a NUL character"),
    ],
)
def test_bad_step_names_step_and_field(make_lib: WriteTemplate, step: str, message: str) -> None:
    lib = _one(make_lib, f"steps:\n  - name: s\n    {step}\n")
    with pytest.raises(StepError) as info:
        # As -e '{"nul": "\u0000", ...}' would give them.
        lib.render("t", {"name": "a", "nul": "\x00", "sur": "\ud800"}, HOST)
    assert message in str(info.value)
    assert str(info.value).startswith("host hv1: template t: ")


def test_step_without_name(make_lib: WriteTemplate) -> None:
    with pytest.raises(StepError, match="step 1: every step needs a non-empty name"):
        _one(make_lib, "steps:\n  - facts: {}\n").render("t", {"name": "a"}, HOST)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("- just a list", "must be a mapping with steps"),
        ("steps: {a: 1}", "steps must be a list"),
        ("steps:", "steps must be a list \\(write 'steps: \\[\\]' for none\\)"),
        ("steps: []\nlock: {name: l, timeout: .nan}", "lock must be a name"),
        ("steps: []\nlock: {name: l, timeout: .inf}", "lock must be a name"),
        ("steps: []\non_failure: retry", "on_failure must be stop or rollback"),
        ("steps: []\nlock: [a]", "lock must be a name"),
        ("steps: []\nvars: {}", "unknown key 'vars'"),
        ("steps: []\nparams: {}", "params belongs in the header"),
    ],
)
def test_bad_document(make_lib: WriteTemplate, body: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        _one(make_lib, body + "\n").render("t", {"name": "a"}, HOST)


def test_template_not_found_lists_folders(tmp_path: Path) -> None:
    lib = TemplateLibrary([tmp_path])
    with pytest.raises(TemplateNotFound) as info:
        lib.get("no_such_template")
    assert str(tmp_path) in info.value.searched[0]
    assert "template 'no_such_template' not found (searched: " in str(info.value)


@pytest.mark.parametrize("name", ["../etc/passwd", "a/b", "..", "x.yaml.j2", "", "a b", "/abs"])
def test_template_name_outside_folders_refused(shipped: TemplateLibrary, name: str) -> None:
    with pytest.raises(TemplateError, match="invalid template name"):
        shipped.get(name)
    with pytest.raises(TemplateError, match="invalid template name"):
        shipped.render(name, {}, HOST)


@pytest.mark.parametrize("name", ["../t.yaml.j2", "/etc/passwd", "a/../../b", "..", "x y"])
def test_partial_name_outside_partials_refused(make_lib: WriteTemplate, name: str) -> None:
    lib = _one(make_lib, f"steps:\n  - name: x\n    file: {{path: /x, content: \"{{{{ partial('{name}') }}}}\"}}\n")
    with pytest.raises(TemplateError, match="line 10: partial: bad name"):
        lib.render("t", {"name": "a"}, HOST)


def test_partial_not_found(make_lib: WriteTemplate) -> None:
    lib = _one(make_lib, "steps:\n  - name: x\n    file: {path: /x, content: \"{{ partial('nope.xml.j2') }}\"}\n")
    with pytest.raises(TemplateError, match=r"partial 'nope\.xml\.j2' not found"):
        lib.render("t", {"name": "a"}, HOST)


def test_missing_templates_folder(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="template folder not found"):
        TemplateLibrary([tmp_path / "nope"])


FRAGMENTS = [
    "steps:\n", "- name: x\n", "  - name: '{{ name }}'\n", "    facts: {}\n", "{% if ", "{% endif %}",
    "{{ ", " }}", "name", "nope", "| quote", "| ipaddr", "| int", "| b64decode", "[", "]", "{", "}",
    ":", "'", '"', "\n", "    command: {argv: ", "lock: ", "on_failure: ", "undo: ", "when: ",
    "{% for x in name %}", "{% endfor %}", "{{ partial('p.xml.j2') }}", "{{ 1/0 }}", "#}", "{#",
    "&a ", "*a ", "!!binary ", "{% set y %}", "{% endset %}", "{{ y.upper() }}", "timeout: -1\n",
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=25))
def test_any_template_fails_cleanly(make_lib: WriteTemplate, parts: list[str]) -> None:
    lib = make_lib({"f": "".join(parts)}, {"p.xml.j2": "<p>{{ name }}</p>"})
    with contextlib.suppress(HostplaneError):
        lib.render("f", {"name": "a"}, HOST)
