"""``-e`` sources: k=v words, @files (YAML/JSON), inline JSON; errors name the source."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from templating_helpers import HOST, WriteTemplate

from control_server.errors import ExtraVarsError
from control_server.extra_vars import merge_vars, parse_extra_vars


def test_key_value_words() -> None:
    assert parse_extra_vars(["a=1 b='two words' c=x=y", "d="]) == {
        "a": "1",
        "b": "two words",
        "c": "x=y",
        "d": "",
    }


def test_files_and_json(tmp_path: Path) -> None:
    (tmp_path / "vars.yml").write_text("count: 3\nwhen: 2024-01-02\nnested: {1: a}\n")
    (tmp_path / "vars.json").write_text('{"count": 4, "list": [1, 2]}')
    (tmp_path / "empty.yml").write_text("")
    got = parse_extra_vars(
        ["@vars.yml", "@empty.yml", '{"name": "vm1"}', "{zone: z1}", f"@{tmp_path / 'vars.json'}"],
        cwd=tmp_path,
    )
    assert got == {
        "count": 4,
        "when": "2024-01-02",
        "nested": {"1": "a"},
        "name": "vm1",
        "zone": "z1",
        "list": [1, 2],
    }


def test_later_sources_win() -> None:
    assert parse_extra_vars(["a=1 b=1", '{"a": 2}', "a=3"]) == {"a": "3", "b": "1"}


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("@missing.yml", "extra vars '@missing.yml': file not found: "),
        ("@bad.json", "extra vars '@bad.json': invalid JSON: Expecting"),
        ("@bad.yml", "extra vars '@bad.yml': invalid YAML: line 2 column"),
        ("@list.yml", "extra vars '@list.yml': expected a mapping of variables, got a list"),
        ("@.", "extra vars '@.': is a directory"),
        ("@", "extra vars '@': '@' needs a file name"),
        ('{"a": 1', "extra vars '{\"a\": 1': invalid JSON"),
        ("[1, 2]", "expected a mapping of variables, got a list"),
        ("novalue", "expected key=value, got 'novalue'"),
        ("a-b=1", "'a-b' is not a valid variable name"),
        ("a='unclosed", "cannot split into key=value words"),
        ('{"a-b": 1}', "'a-b' is not a valid variable name"),
        ("  ", "empty value"),
        ('{"a": ' + "[" * 5000 + "]" * 5000 + "}", "nested deeper than 100 levels"),
        ('{"a": ' + "[" * 101 + "]" * 101 + "}", "nested deeper than 100 levels"),
        ("@deep.json", "extra vars '@deep.json': value nested deeper than 100 levels"),
        ("@deep.yml", "extra vars '@deep.yml': value nested deeper than 100 levels"),
    ],
)
def test_bad_sources(tmp_path: Path, source: str, message: str) -> None:
    (tmp_path / "bad.json").write_text('{"a": }')
    (tmp_path / "bad.yml").write_text("a: 1\n b: [\n")
    (tmp_path / "list.yml").write_text("- 1\n")
    (tmp_path / "deep.json").write_text('{"a": ' + "[" * 5000 + "]" * 5000 + "}")
    (tmp_path / "deep.yml").write_text("a: " + "[" * 5000 + "]" * 5000)
    with pytest.raises(ExtraVarsError) as info:
        parse_extra_vars([source], cwd=tmp_path)
    assert message in str(info.value)


def test_nesting_up_to_the_limit_is_kept() -> None:
    value: object = []
    for _ in range(99):
        value = [value]
    assert parse_extra_vars([f'{{"a": {json.dumps(value)}}}'])["a"] == value


def test_long_inline_source_is_shortened() -> None:
    source = '{"password": "' + "x" * 100 + '"'
    with pytest.raises(ExtraVarsError) as info:
        parse_extra_vars([source])
    assert len(info.value.source) <= 60


def test_extra_vars_win_over_host_vars(make_lib: WriteTemplate) -> None:
    lib = make_lib(
        {
            "t": """\
            {#
            params:
              count: {type: int, default: 1}
            #}
            steps:
              - name: '{{ rack }} {{ count }} {{ inventory_hostname }}'
                facts: {}
            """
        }
    )
    host_vars = {"rack": "r1", "count": 2}
    extra = parse_extra_vars(["rack=r9 count=7"])
    seq = lib.render("t", merge_vars(host_vars, extra), HOST)
    assert seq.steps[0]["name"] == "r9 7 hv1"
    assert seq.params == {"count": 7}
    seq = lib.render("t", merge_vars(host_vars, {}), HOST)
    assert seq.steps[0]["name"] == "r1 2 hv1"
