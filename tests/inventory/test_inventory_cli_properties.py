"""Property tests through the CLI: whatever bytes an inventory file holds and whatever the
pattern, ``hostplane inventory ...`` exits 0 or 1 with a message, never 70 ("internal
error") and never a traceback. (HOSTPLANE_FUZZ_EXAMPLES=600 for a longer search.)"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_inventory_properties import ini_text, yaml_text

from control_server.cli import main

_settings = settings(max_examples=int(os.environ.get("HOSTPLANE_FUZZ_EXAMPLES", 60)), deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text that looks like an inventory, with stray bytes (non-UTF-8, NUL, CR) spliced in.
_garbage = st.sampled_from([b"\xff", b"\xe9", b"\x00", b"\r", b"\xed\xa0\x80", b"\xc3", b"\n"])
_inventory_bytes = st.one_of(
    st.binary(max_size=200),
    st.builds(lambda t, g, at: t.encode()[:at] + g + t.encode()[at:],
              ini_text | yaml_text, _garbage, st.integers(0, 200)),
)
_pattern = st.text(st.sampled_from(list("aeh1*?[]:!&,~^$.()@ \\")), max_size=10)


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
@given(data=_inventory_bytes, name=st.sampled_from(["inv.ini", "inv.yaml", "inv.json", "hosts"]),
       pattern=_pattern)
def test_any_inventory_file_is_exit_0_or_1(data: bytes, name: str, pattern: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        _check(*_hostplane("inventory", "list", "-i", str(path)))
        _check(*_hostplane("inventory", "hosts", "-i", str(path), pattern or "all"))


@_settings
@given(group_vars=_inventory_bytes, pattern=_pattern, limit=_pattern)
def test_any_vars_file_and_pattern_is_exit_0_or_1(group_vars: bytes, pattern: str,
                                                  limit: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "group_vars").mkdir()
        (root / "hosts.ini").write_text("[web]\nh1\nh[2:3] a=1\n[db]\nd1\n")
        (root / "group_vars" / "web.yml").write_bytes(group_vars)
        inv = str(root / "hosts.ini")
        _check(*_hostplane("inventory", "list", "-i", inv))
        _check(*_hostplane("inventory", "hosts", "-i", inv, pattern or "all", "-l", limit or "all"))
