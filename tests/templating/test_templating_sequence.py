"""Steps to wire form, requests, ad hoc sequences, and the template library's folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from templating_helpers import HOST, WriteTemplate

from control_server.errors import StepError
from control_server.sequence import Sequence, adhoc_sequence, build_request, redact
from control_server.templating import TemplateLibrary
from host_executor import protocol


def test_wire_form_when_and_coercion(make_lib: WriteTemplate) -> None:
    lib = make_lib(
        {
            "t": """\
            {#
            description: d
            params:
              big: {type: bool, default: false}
              port: {type: int, default: 8080}
            #}
            lock: {name: web, timeout: 5}
            on_failure: rollback
            steps:
              - name: always
                command: {argv: [echo, "{{ port }}"], env: {PORT: {{ port }}}, cwd: {{ none }}}
                undo: {file: {path: /x, state: absent}, timeout: "{{ port // 1000 }}"}
                ignore_errors: true
              - name: only when big
                facts: {}
                when: {{ big }}
              - name: numeric string to number
                wait: {port: "{{ port }}", timeout: "2.5"}
                timeout: "{{ port }}"
            """
        }
    )
    seq = lib.render("t", {}, HOST)
    assert seq.description == "d" and seq.lock == {"name": "web", "timeout": 5}
    assert seq.on_failure == "rollback"
    assert seq.steps == [
        {
            "name": "always",
            "action": "command",
            "args": {"argv": ["echo", "8080"], "env": {"PORT": "8080"}},
            "timeout": None,
            "undo": {"action": "file", "args": {"path": "/x", "state": "absent"}, "timeout": 8},
            "ignore_errors": True,
        },
        {
            "name": "numeric string to number",
            "action": "wait",
            "args": {"port": 8080, "timeout": 2.5},
            "timeout": 8080,
            "undo": None,
            "ignore_errors": False,
        },
    ]
    assert [s["name"] for s in lib.render("t", {"big": "yes"}, HOST).steps][1] == "only when big"


def test_build_request() -> None:
    seq = adhoc_sequence(["uptime"], HOST)
    req = build_request(seq, "r1", check=True, diff=True, deadline=1234.5)
    assert req["id"] == "r1" and req["check"] is True and req["diff"] is True
    assert req["deadline"] == 1234.5 and req["protocol"] == protocol.PROTOCOL_VERSION
    assert req["steps"] == seq.steps and req["steps"] is not seq.steps


def test_build_request_names_host_template_step_field() -> None:
    bad = Sequence(
        template="t",
        host=HOST,
        description="",
        params={},
        lock=None,
        on_failure="stop",
        steps=[{"name": "s1", "action": "command", "args": {"argv": []}}],
        secrets=frozenset(),
    )
    with pytest.raises(StepError) as info:
        build_request(bad, "r1")
    assert str(info.value) == (
        "host hv1: template t: step 1 ('s1'): args.argv: must be a non-empty list of strings"
    )


def test_adhoc_sequences() -> None:
    cmd = adhoc_sequence(["ls", "-l", "/tmp dir"], HOST)
    assert cmd.steps[0]["action"] == "command"
    assert cmd.steps[0]["args"] == {"argv": ["ls", "-l", "/tmp dir"]}
    assert cmd.steps[0]["name"] == "ls -l '/tmp dir'"
    sh = adhoc_sequence(["echo $HOME", "| wc -c"], HOST, shell=True)
    assert sh.steps[0]["args"] == {"cmd": "echo $HOME | wc -c"}
    assert (sh.template, sh.host, sh.on_failure, sh.lock) == ("(exec)", HOST, "stop", None)
    with pytest.raises(StepError, match="nothing to run"):
        adhoc_sequence([], HOST)


def test_redact_function() -> None:
    assert redact({"a": ["xx-pw-xx", ("pw",)], "pw": 1}, {"pw"}) == {
        "a": ["xx-********-xx", ["********"]],
        "********": 1,
    }
    assert redact({"n": 1234}, {"1234"}) == {"n": "********"}
    assert redact("unchanged", set()) == "unchanged"


def test_templates_folder_is_searched_first(tmp_path: Path) -> None:
    (tmp_path / "host_facts.yaml.j2").write_text(
        "{# description: mine #}\nsteps:\n  - name: mine\n    facts: {}\n"
    )
    (tmp_path / "extra.yaml.j2").write_text("steps: []\n")
    (tmp_path / "not a template.yaml.j2").write_text("steps: []\n")
    lib = TemplateLibrary([tmp_path])
    assert lib.get("host_facts").description == "mine"
    assert lib.render("host_facts", {}, HOST).steps[0]["name"] == "mine"
    infos = {info.name: info for info in lib.list()}
    shipped = TemplateLibrary([]).list()
    assert "launch_instance" in infos and "extra" in infos and len(infos) == len(shipped) + 1
    assert infos["host_facts"].path == tmp_path / "host_facts.yaml.j2"
    assert infos["extra"].description == "" and infos["extra"].params == ()


def test_changed_template_is_reread(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml.j2"
    path.write_text("{# description: one #}\nsteps: []\n")
    lib = TemplateLibrary([tmp_path])
    assert lib.get("t").description == "one"
    path.write_text("{# description: two #}\nsteps:\n  - name: two\n    facts: {}\n")
    os.utime(path, ns=(10**18, 10**18))
    assert lib.get("t").description == "two"
    assert lib.render("t", {}, HOST).steps[0]["name"] == "two"


def test_partials_of_templates_folder_come_first(make_lib: WriteTemplate) -> None:
    lib = make_lib(
        {"t": "steps:\n  - name: x\n    libvirt_pool: {name: p, xml: {{ partial('pool.xml.j2') }}}\n"},
        {"pool.xml.j2": "<pool type='mine'/>"},
    )
    assert lib.render("t", {}, HOST).steps[0]["args"]["xml"] == "<pool type='mine'/>"
