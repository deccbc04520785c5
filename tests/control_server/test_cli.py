"""The CLI end to end, in-process: exit codes, error messages, no tracebacks, local runs."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from control_server.cli import cli, main


def _main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(args))
        raise SystemExit(0)
    out, err = capsys.readouterr()
    code = info.value.code
    return (code if isinstance(code, int) else 1), out, err


@pytest.fixture
def local_inv(tmp_path: Path) -> Path:
    inv = tmp_path / "local.ini"
    inv.write_text("[here]\nlocalhost ansible_connection=local\n")
    return inv


def _commands() -> list[list[str]]:
    out: list[list[str]] = []
    for name, cmd in cli.commands.items():
        sub = getattr(cmd, "commands", None)
        if sub:
            out += [[name, s] for s in sub]
        out.append([name])
    return out


@pytest.mark.parametrize("words", _commands(), ids=lambda w: " ".join(w))
def test_every_command_has_help_with_an_example(
    capsys: pytest.CaptureFixture[str], words: list[str]
) -> None:
    code, out, _ = _main(capsys, *words, "--help")
    assert code == 0
    assert "Example" in out


def test_malformed_inventory_names_file_and_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.ini"
    bad.write_text("[ok]\nh1\n[broken\nh2\n")
    code, out, err = _main(capsys, "inventory", "list", "-i", str(bad))
    assert code == 1
    assert f"{bad}:3" in err
    assert "Traceback" not in err + out


def test_unmatched_pattern_warns_as_ansible(
    capsys: pytest.CaptureFixture[str], local_inv: Path
) -> None:
    code, out, err = _main(capsys, "inventory", "hosts", "-i", str(local_inv), "nosuch")
    assert code == 0 and out == ""
    assert "Could not match supplied host pattern, ignoring: nosuch" in err


@pytest.mark.parametrize(
    ("pattern", "words"),
    [("~[unclosed", "'[' without ']' at column 2"), ("~h(", "Invalid host list pattern"),
     ("here[1:2:3]", "bad subscript")],
)
def test_malformed_pattern_selects_nothing(
    capsys: pytest.CaptureFixture[str], local_inv: Path, pattern: str, words: str
) -> None:
    marker = local_inv.parent / "ran"
    code, out, err = _main(capsys, "exec", "-i", str(local_inv), pattern, "--", "touch",
                           str(marker))
    assert code == 1, out + err
    assert repr(pattern) in err and words in err
    assert not marker.exists()


def test_undefined_variable_names_variable_template_and_line(
    capsys: pytest.CaptureFixture[str], local_inv: Path, tmp_path: Path
) -> None:
    tdir = tmp_path / "t"
    tdir.mkdir()
    (tdir / "broken.yaml.j2").write_text(textwrap.dedent("""\
        {#
        description: uses a variable nobody defines
        params: {}
        #}
        steps:
          - name: one
            command: {argv: [echo, "{{ nobody_defined_me }}"]}
        """))
    code, _, err = _main(capsys, "render", "-i", str(local_inv), "--templates", str(tdir),
                         "all", "broken")
    assert code == 1
    assert "nobody_defined_me" in err and "broken" in err and "line 7" in err
    assert "Traceback" not in err


def test_bad_param_and_unknown_template(
    capsys: pytest.CaptureFixture[str], local_inv: Path
) -> None:
    code, _, err = _main(capsys, "render", "-i", str(local_inv), "all", "launch_instance",
                         "-e", "name=Bad_Name!")
    assert code == 1 and "'name'" in err
    code, _, err = _main(capsys, "render", "-i", str(local_inv), "all", "no_such_template")
    assert code == 1 and "no_such_template" in err and "not found" in err
    code, _, err = _main(capsys, "run", "-i", str(local_inv), "all", "lanch_instance")
    assert code == 1 and "(did you mean 'launch_instance'?)" in err


@pytest.mark.parametrize("command", ["render", "run"])
def test_extra_vars_no_template_reads_warn_once(
    capsys: pytest.CaptureFixture[str], local_inv: Path, command: str
) -> None:
    args = [command, "-i", str(local_inv), "all", "launch_instance", "-e", "name=vm1",
            "-e", "memory=lots", "-e", "ansible_user=root"]
    _, _, err = _main(capsys, *args, *(["--check", "--no-record"] if command == "run" else []))
    warnings = [line for line in err.splitlines() if "extra vars" in line]
    assert warnings == ["[WARNING]: extra vars not used by template launch_instance (neither "
                        "params nor in its text): 'memory' (did you mean 'memory_mib'?)"]


def test_secret_params_never_printed(
    capsys: pytest.CaptureFixture[str], local_inv: Path, tmp_path: Path
) -> None:
    tdir = tmp_path / "t"
    tdir.mkdir()
    (tdir / "secretive.yaml.j2").write_text(textwrap.dedent("""\
        {#
        description: writes a secret
        params:
          token: {required: true, secret: true}
        #}
        steps:
          - name: write it
            file: {path: /tmp/never-written, content: "token={{ token }}"}
        """))
    code, out, err = _main(capsys, "render", "-i", str(local_inv), "--templates", str(tdir),
                           "all", "secretive", "-e", "token=hunter2-s3cr3t")
    assert code == 0
    assert "hunter2-s3cr3t" not in out + err
    assert "token=********" in out


def test_exec_local_json_lines_and_exit_codes(
    capsys: pytest.CaptureFixture[str], local_inv: Path, tmp_path: Path
) -> None:
    code, out, _ = _main(capsys, "exec", "-i", str(local_inv), "all", "--json", "--",
                         "echo", "hi there")
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    ends = [ln["event"] for ln in lines if ln["kind"] == "executor"
            and ln["event"]["event"] == "step_end"]
    assert ends[0]["stdout"] == "hi there\n"
    assert lines[-1]["kind"] == "run_end" and lines[-1]["exit_code"] == 0
    retry = tmp_path / "retry"
    code, out, _ = _main(capsys, "exec", "-i", str(local_inv), "all", "--retry-file",
                         str(retry), "--", "false")
    assert code == 2
    assert retry.read_text() == "localhost\n"
    assert "FAILED localhost" in out


def test_exec_prints_each_hosts_output(
    capsys: pytest.CaptureFixture[str], local_inv: Path
) -> None:
    code, out, _ = _main(capsys, "exec", "-i", str(local_inv), "all", "--shell", "--",
                         "echo one; echo two")
    assert code == 0
    assert "localhost | CHANGED | rc=0 >>" in out
    assert "one\ntwo" in out


def test_no_inventory_is_a_clear_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HOSTPLANE_INVENTORY", raising=False)
    monkeypatch.delenv("ANSIBLE_INVENTORY", raising=False)
    code, _, err = _main(capsys, "inventory", "hosts", "all")
    assert code == 1 and "no inventory" in err
