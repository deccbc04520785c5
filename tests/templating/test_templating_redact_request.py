"""The request names its secrets (``redact``) for the executor; the control side masks
exact output bytes (``*_b64``) too, for journals an older executor wrote unmasked."""

from __future__ import annotations

import base64

from templating_helpers import HOST, WriteTemplate

from control_server.params import MASK
from control_server.sequence import build_request, forms_of, redact
from host_executor import protocol

TEMPLATE = """
{#
params:
  user: {default: admin}
  password: {secret: true, required: true}
#}
steps:
  - name: set password
    shell: {cmd: 'echo {{ password | quote }}'}
"""


def test_request_names_the_raw_secret_values(make_lib: WriteTemplate) -> None:
    lib = make_lib({"s": TEMPLATE})
    seq = lib.render("s", {"password": "it's pw"}, HOST)
    req = build_request(seq, "r1")
    assert req["redact"] == ["it's pw"]  # raw only: the executor derives the other forms
    assert protocol.validate_request(req)["redact"] == ["it's pw"]
    assert seq.redact(req)["redact"] == [MASK]


def test_no_secret_no_redact_field(make_lib: WriteTemplate) -> None:
    lib = make_lib({"p": "steps:\n  - name: x\n    command: {argv: [/bin/true]}\n"})
    assert "redact" not in build_request(lib.render("p", {}, HOST), "r2")


def test_b64_output_is_masked_after_decoding() -> None:
    raw = b"\xff before hunter22 after"
    event = {"event": "step_end", **protocol.encode_output(raw, 1000, "stdout")}
    shown = redact(event, forms_of(["hunter22"]))
    assert base64.b64decode(shown["stdout_b64"]) == b"\xff before " + MASK.encode() + b" after"
    assert "hunter22" not in shown["stdout"]
