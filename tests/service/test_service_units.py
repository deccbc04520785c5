"""Small pieces of the service, in-process: tokens, SSE framing, error locations,
--listen parsing."""

from __future__ import annotations

from pathlib import Path

import pytest

from control_server.errors import (
    InputError,
    ParamError,
    PatternError,
    StepError,
    TemplateError,
    TemplateNotFound,
    UndefinedVariable,
)
from control_server.service import sse
from control_server.service.errors import field_of
from control_server.service.server import parse_listen
from control_server.service.tokens import TokenStore, hash_secret, secret_matches
from control_server.store.jobstore import JobStore


@pytest.fixture
def tokens(tmp_path: Path) -> TokenStore:
    return TokenStore(JobStore.open(f"sqlite:///{tmp_path / 'db.sqlite'}").engine)


def test_tokens_verify_only_while_active(tokens: TokenStore) -> None:
    token = tokens.create("ci", "operator")
    assert token.startswith("hp_")
    principal = tokens.verify(token)
    assert principal is not None and principal.can_write and principal.name == "ci"
    assert tokens.verify(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert tokens.verify("hp_999_" + token.split("_", 2)[2]) is None
    assert tokens.verify("") is None and tokens.verify("hp_x_y") is None
    with pytest.raises(InputError, match="exists"):
        tokens.create("ci", "reader")
    assert tokens.revoke("ci") and not tokens.revoke("ci")
    assert tokens.verify(token) is None
    fresh = tokens.create("ci", "reader")  # a revoked name can be used again
    again = tokens.verify(fresh)
    assert again is not None and not again.can_write
    [listed] = tokens.list_tokens()
    assert listed.role == "reader" and listed.last_used_at is not None


@pytest.mark.parametrize(("name", "role"), [("", "reader"), ("a b", "reader"),
                                            ("../x", "reader"), ("ok", "admin")])
def test_token_names_and_roles_are_checked(tokens: TokenStore, name: str, role: str) -> None:
    with pytest.raises(InputError):
        tokens.create(name, role)


def test_hashes_are_salted_and_never_hold_the_secret() -> None:
    one, two = hash_secret("s3cret-value"), hash_secret("s3cret-value")
    assert one != two and "s3cret" not in one
    assert secret_matches("s3cret-value", one) and not secret_matches("other", one)
    assert not secret_matches("s3cret-value", "md5$x$y")


def test_sse_framing_and_resume_points() -> None:
    text = sse.format_event(3, "executor", {"line": "a\nb"})
    assert text == 'id: 3\nevent: executor\ndata: {"line":"a\\nb"}\n\n'
    assert sse.parse_last_id("") == 0 and sse.parse_last_id(" 42 ") == 42
    for bad in ("x", "-1", str(2**63)):
        with pytest.raises(ValueError):
            sse.parse_last_id(bad)


def test_input_errors_name_their_field() -> None:
    cases = [
        (ParamError("memory_mib", "an integer"), ["body", "vars", "memory_mib"]),
        (UndefinedVariable("name", "t", 3), ["body", "vars", "name"]),
        (TemplateNotFound("nope", []), ["body", "template"]),
        (TemplateError("syntax", "t"), ["body", "template"]),
        (StepError("bad arg", "s", 0), ["body", "vars"]),
        (PatternError("bad", "x["), ["body", "target"]),
        (InputError("other"), ["body"]),
    ]
    for exc, loc in cases:
        assert field_of(exc)[0] == loc


def test_listen_addresses() -> None:
    assert parse_listen("127.0.0.1:8421") == ("127.0.0.1", 8421)
    assert parse_listen(":9000") == ("127.0.0.1", 9000)
    assert parse_listen("[::1]:8421") == ("::1", 8421)
    for bad in ("8421", "host:", "h:0", "h:70000", "h:x"):
        with pytest.raises(InputError):
            parse_listen(bad)
