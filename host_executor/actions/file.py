"""``file``: a file with content, a directory, or nothing at a path.

- ``state: file`` (the default): the file holds ``content`` (UTF-8 text) or ``content_b64``
  (exact bytes); without either, the file only has to exist (created empty). Writes are
  atomic (temp file in the same folder, fsync, rename). A symlink at ``path`` is followed:
  its target is written. Rewriting keeps the old mode and owner unless ``mode``/``owner``/
  ``group`` say otherwise; a new file gets 0666 minus the umask.
- ``state: directory``: created with parents; ``recurse`` also applies ``owner``/``group``
  (not ``mode``) to everything beneath.
- ``state: absent``: the file, link or whole tree is removed.

``mode`` is an octal string ("0644") or an int (the mode's value). ``changed`` only when
something changed; check mode reports the same changes and touches nothing; with diff,
content changes come as a unified diff (text only, size-capped).
"""

from __future__ import annotations

import base64
import binascii
import os
import stat

from host_executor import fsutil, protocol
from host_executor.errors import StepFailed
from host_executor.step import StepContext, StepResult

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every host start-up time; annotations are strings
    from typing import Any, Dict, List, Optional, Tuple


def check_args(args: Dict[str, Any]) -> None:
    state = args.get("state") or "file"
    if not os.path.isabs(args["path"]):
        raise protocol.ProtocolError("expected an absolute path", "path")
    has_content = args.get("content") is not None or args.get("content_b64") is not None
    if args.get("content") is not None and args.get("content_b64") is not None:
        raise protocol.ProtocolError("give content or content_b64, not both", "content_b64")
    if has_content and state != "file":
        raise protocol.ProtocolError("content is only for state file", "content")
    if args.get("recurse") and state != "directory":
        raise protocol.ProtocolError("recurse is only for state directory", "recurse")
    if args.get("content_b64") is not None:
        _decode_b64(args["content_b64"])
    fsutil.parse_mode(args.get("mode"))
    for key in ("owner", "group"):
        _check_id(args.get(key), key)


def _check_id(value: Any, field: str) -> None:
    # chown takes 32-bit ids and reads 2**32-1 as "leave alone"; '²'.isdigit() is true.
    if isinstance(value, str) and value.isdigit():
        if not value.isascii():
            raise protocol.ProtocolError("expected a name or a decimal id", field)
        value = int(value)
    if isinstance(value, int) and not 0 <= value < 2**32 - 1:
        raise protocol.ProtocolError("id out of range: %d" % value, field)


def _decode_b64(text: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, ValueError):
        raise protocol.ProtocolError("not valid base64", "content_b64") from None


def _wanted_content(args: Dict[str, Any]) -> Optional[bytes]:
    if args.get("content") is not None:
        return str(args["content"]).encode("utf-8")
    if args.get("content_b64") is not None:
        return _decode_b64(args["content_b64"])
    return None


def _stat(path: str) -> Optional[os.stat_result]:
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None


def _attr_changes(st: os.stat_result, mode: Optional[int], uid: Optional[int],
                  gid: Optional[int]) -> List[str]:
    changes = []
    if mode is not None and stat.S_IMODE(st.st_mode) != mode:
        changes.append("mode %04o -> %04o" % (stat.S_IMODE(st.st_mode), mode))
    if uid is not None and st.st_uid != uid:
        changes.append("owner %d -> %d" % (st.st_uid, uid))
    if gid is not None and st.st_gid != gid:
        changes.append("group %d -> %d" % (st.st_gid, gid))
    return changes


def _set_attrs(path: str, mode: Optional[int], uid: Optional[int], gid: Optional[int]) -> None:
    if uid is not None or gid is not None:
        os.chown(path, -1 if uid is None else uid, -1 if gid is None else gid)
    if mode is not None:
        os.chmod(path, mode)


def _result(path: str, state: str, changes: List[str], ctx: StepContext,
            diff: Optional[str] = None) -> StepResult:
    data = {"path": path, "state": state, "changes": changes}
    if not changes:
        return StepResult("ok", data=data)
    verb = "would change" if ctx.check else "changed"
    return StepResult("changed", msg="%s: %s" % (verb, ", ".join(changes)), data=data, diff=diff)


def _file(path: str, args: Dict[str, Any], ctx: StepContext, ids: Tuple[Optional[int], Optional[int]]) -> StepResult:
    uid, gid = ids
    mode = fsutil.parse_mode(args.get("mode"))
    want = _wanted_content(args)
    target = os.path.realpath(path)
    st = _stat(target)
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise StepFailed("%s is a directory" % path)
    old: Optional[bytes] = None
    changes: List[str] = []
    if st is None:
        changes.append("create")
    else:
        if want is not None:
            with open(target, "rb") as handle:
                old = handle.read()
            if old != want:
                changes.append("content")
        changes += _attr_changes(st, mode, uid, gid)
    diff = None
    if ctx.diff and ("create" in changes or "content" in changes):
        diff = fsutil.content_diff(path, old, want if want is not None else b"")
    if changes and not ctx.check:
        if "create" in changes or "content" in changes:
            if mode is None:
                mode = stat.S_IMODE(st.st_mode) if st else 0o666 & ~fsutil.current_umask()
            keep_uid = st.st_uid if st is not None and st.st_uid != os.geteuid() else -1
            keep_gid = st.st_gid if st is not None and st.st_gid != os.getegid() else -1
            fsutil.atomic_write(target, want or b"", mode,
                                keep_uid if uid is None else uid, keep_gid if gid is None else gid)
        else:
            _set_attrs(target, mode, uid, gid)
    return _result(path, "file", changes, ctx, diff)


def _owned_beneath(path: str, uid: Optional[int], gid: Optional[int]) -> List[str]:
    """Entries under ``path`` whose owner or group differs from the wanted one."""
    wrong = []
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            entry = os.path.join(root, name)
            st = os.lstat(entry)
            if (uid is not None and st.st_uid != uid) or (gid is not None and st.st_gid != gid):
                wrong.append(entry)
    return wrong


def _directory(path: str, args: Dict[str, Any], ctx: StepContext, ids: Tuple[Optional[int], Optional[int]]) -> StepResult:
    uid, gid = ids
    mode = fsutil.parse_mode(args.get("mode"))
    st = _stat(path)
    if st is not None and not stat.S_ISDIR(st.st_mode):
        raise StepFailed("%s exists and is not a directory" % path)
    changes = ["create"] if st is None else _attr_changes(st, mode, uid, gid)
    beneath: List[str] = []
    if args.get("recurse") and st is not None and (uid is not None or gid is not None):
        beneath = _owned_beneath(path, uid, gid)
        if beneath:
            changes.append("ownership of %d entries beneath" % len(beneath))
    if changes and not ctx.check:
        if st is None:
            os.makedirs(path)
        _set_attrs(path, mode, uid, gid)
        for entry in beneath:
            os.lchown(entry, -1 if uid is None else uid, -1 if gid is None else gid)
    diff = "--- %s: absent\n+++ %s: directory\n" % (path, path) if ctx.diff and st is None else None
    return _result(path, "directory", changes, ctx, diff)


def _absent(path: str, ctx: StepContext) -> StepResult:
    if not os.path.lexists(path):
        return _result(path, "absent", [], ctx)
    is_tree = os.path.isdir(path) and not os.path.islink(path)
    diff = None
    if ctx.diff:
        if is_tree:
            diff = "--- %s: directory\n+++ %s: absent\n" % (path, path)
        elif os.path.isfile(path) and not os.path.islink(path):
            with open(path, "rb") as handle:
                diff = fsutil.content_diff(path, handle.read(fsutil.DIFF_INPUT_LIMIT + 1), None)
    if not ctx.check:
        if is_tree:
            import shutil

            shutil.rmtree(path)
        else:
            os.unlink(path)
    return _result(path, "absent", ["remove"], ctx, diff)


def run_file(args: Dict[str, Any], ctx: StepContext) -> StepResult:
    path = os.path.normpath(args["path"])
    state = args.get("state") or "file"
    try:
        if state == "absent":
            return _absent(path, ctx)
        ids = (fsutil.resolve_uid(args.get("owner")), fsutil.resolve_gid(args.get("group")))
        if state == "directory":
            return _directory(path, args, ctx, ids)
        return _file(path, args, ctx, ids)
    except OSError as exc:
        raise StepFailed("%s: %s" % (exc.filename or path, exc.strerror or exc)) from None
