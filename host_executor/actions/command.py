"""``command`` (argv, no shell) and ``shell`` (``cmd`` through ``executable``, /bin/sh).

Guards, evaluated in this order and in check mode too: ``creates`` (skip when the path
exists; glob patterns allowed), ``removes`` (skip when it does not), ``unless`` (skip when
that command exits 0: a string runs through /bin/sh, a list as argv). ``unless`` runs even
in check mode: it must be a read-only probe. A guard that decides not to run reports
``ok`` with a message saying why.

When the command runs, ``rc`` (default 0) lists the accepted return codes; any other rc
fails the step. The step reports ``changed`` unless ``changed_when_rc`` is given, in which
case only those return codes count as changed and the other accepted ones as ``ok``.
Check mode reports ``changed`` with "would run" and runs nothing.
"""

from __future__ import annotations

import os

from host_executor import protocol
from host_executor.errors import StepFailed
from host_executor.proc import ProcResult, run_process
from host_executor.step import StepContext, StepResult

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every host start-up time; annotations are strings
    from typing import Any, Dict, List, Optional

_UNLESS_OUTPUT = 64 * 1024


def _int_list(value: Any, field: str) -> List[int]:
    items = value if isinstance(value, list) else [value]
    for item in items:
        if not isinstance(item, int) or isinstance(item, bool):
            raise protocol.ProtocolError("expected an int or a list of ints", field)
    return list(items)


def check_args(args: Dict[str, Any]) -> None:
    env = args.get("env") or {}
    for key, value in env.items():
        if not isinstance(value, str) or not key or "=" in key:
            raise protocol.ProtocolError(
                "expected a mapping of variable names to strings (bad entry %r)" % key, "env"
            )
    for key in ("rc", "changed_when_rc"):
        if args.get(key) is not None:
            _int_list(args[key], key)
    unless = args.get("unless")
    if isinstance(unless, list) and (not unless or not all(isinstance(a, str) for a in unless)):
        raise protocol.ProtocolError("expected a command string or a non-empty argv list", "unless")


def _exists(path: str) -> bool:
    if any(ch in path for ch in "*?["):
        import glob

        return bool(glob.glob(path))
    return os.path.lexists(path)


def _environment(args: Dict[str, Any]) -> Optional[Dict[str, str]]:
    extra = args.get("env")
    if not extra:
        return None
    env = dict(os.environ)
    env.update(extra)
    return env


def _guard(args: Dict[str, Any], ctx: StepContext, env: Optional[Dict[str, str]]) -> Optional[StepResult]:
    """A result when a guard says not to run; None to go on."""
    creates = args.get("creates")
    if creates and _exists(creates):
        return StepResult("ok", msg="not run: %s exists" % creates)
    removes = args.get("removes")
    if removes and not _exists(removes):
        return StepResult("ok", msg="not run: %s does not exist" % removes)
    unless = args.get("unless")
    if unless:
        argv = ["/bin/sh", "-c", unless] if isinstance(unless, str) else list(unless)
        probe = run_process(
            argv, _UNLESS_OUTPUT, ctx.cancel, ctx.timeout, env, args.get("cwd")
        )
        _raise_if_stopped(probe, ctx, "the unless command")
        if probe.rc == 0:
            return StepResult("ok", msg="not run: the unless command succeeded", data={"unless_rc": 0})
    return None


def _raise_if_stopped(result: ProcResult, ctx: StepContext, what: str) -> None:
    if result.timed_out:
        raise StepFailed(
            "timed out after %g s (%s killed)" % (ctx.timeout or 0, what),
            rc=result.rc,
            data={"timed_out": True},
            stdout=bytes(result.stdout),
            stderr=bytes(result.stderr),
        )
    if result.cancelled:
        raise StepFailed(
            "interrupted: %s (%s killed)" % (result.cancelled, what),
            rc=result.rc,
            data={"interrupted": True},
            stdout=bytes(result.stdout),
            stderr=bytes(result.stderr),
        )


def _run(argv: List[str], args: Dict[str, Any], ctx: StepContext) -> StepResult:
    env = _environment(args)
    guarded = _guard(args, ctx, env)
    if guarded is not None:
        return guarded
    if ctx.check:
        return StepResult("changed", msg="would run")
    stdin = args.get("stdin")
    result = run_process(
        argv,
        ctx.output_limit,
        ctx.cancel,
        ctx.timeout,
        env,
        args.get("cwd"),
        stdin.encode("utf-8") if stdin is not None else None,
    )
    _raise_if_stopped(result, ctx, "the process group")
    rc = result.rc if result.rc is not None else -1
    expected = _int_list(args.get("rc", 0), "rc")
    out = bytes(result.stdout)
    err = bytes(result.stderr)
    if rc not in expected:
        wanted = ", ".join(str(c) for c in expected)
        raise StepFailed(
            "exited with rc %d (expected %s)" % (rc, wanted), rc=rc, stdout=out, stderr=err
        )
    status = "changed"
    if args.get("changed_when_rc") is not None:
        status = "changed" if rc in _int_list(args["changed_when_rc"], "changed_when_rc") else "ok"
    return StepResult(status, rc=rc, stdout=out, stderr=err)


def run_command(args: Dict[str, Any], ctx: StepContext) -> StepResult:
    return _run(list(args["argv"]), args, ctx)


def run_shell(args: Dict[str, Any], ctx: StepContext) -> StepResult:
    return _run([args.get("executable") or "/bin/sh", "-c", args["cmd"]], args, ctx)
