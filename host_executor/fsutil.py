"""File helpers for the ``file`` action: modes, owners, atomic writes, text diffs."""

from __future__ import annotations

import contextlib
import os

from host_executor import protocol
from host_executor.errors import StepFailed

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every host start-up time; annotations are strings
    from typing import Any, Optional

DIFF_INPUT_LIMIT = 256 * 1024
DIFF_OUTPUT_LIMIT = 64 * 1024


def parse_mode(value: Any) -> Optional[int]:
    """``"0644"``, ``"644"``, ``"0o644"`` (octal text) or an int (the mode's value, 420 for
    0644: JSON has no octal). ``ProtocolError`` for anything else."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        mode = value
    elif isinstance(value, str):
        text = value.strip().lower()
        if text.startswith("0o"):
            text = text[2:]
        try:
            mode = int(text, 8)
        except ValueError:
            raise protocol.ProtocolError(
                "expected an octal mode like \"0644\", got %r" % value, "mode"
            ) from None
    else:
        raise protocol.ProtocolError("expected an octal string or an int", "mode")
    if not 0 <= mode <= 0o7777:
        raise protocol.ProtocolError("mode out of range: %r" % value, "mode")
    return mode


def resolve_uid(value: Any) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        return int(value)
    import pwd

    try:
        return pwd.getpwnam(value).pw_uid
    except KeyError:
        raise StepFailed("unknown user %r on this host" % value) from None


def resolve_gid(value: Any) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        return int(value)
    import grp

    try:
        return grp.getgrnam(value).gr_gid
    except KeyError:
        raise StepFailed("unknown group %r on this host" % value) from None


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on directories; the rename is still atomic
    finally:
        os.close(fd)


def atomic_write(path: str, data: bytes, mode: int, uid: int = -1, gid: int = -1) -> None:
    """Replace ``path`` with ``data``: a temp file in the same folder, fsync, rename.

    Readers see the old file or the new one, never a half-written one, even after a crash.
    """
    folder = os.path.dirname(path) or "."
    if not os.path.isdir(folder):
        raise StepFailed("cannot write %s: folder %s does not exist" % (path, folder))
    tmp = os.path.join(
        folder, ".%s.hostplane-%d-%s.tmp" % (os.path.basename(path), os.getpid(), os.urandom(4).hex())
    )
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if uid != -1 or gid != -1:
                os.fchown(fd, uid, gid)
            os.fchmod(fd, mode)  # after fchown, which may clear setuid/setgid bits
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(folder)


def _text(data: Optional[bytes]) -> Optional[str]:
    if data is None:
        return ""
    if b"\0" in data[:8192]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def content_diff(path: str, old: Optional[bytes], new: Optional[bytes]) -> str:
    """A unified diff of two contents (None: the file is absent); text only, size-capped."""
    before = "/dev/null" if old is None else path + " (before)"
    after = "/dev/null" if new is None else path + " (after)"
    header = "--- %s\n+++ %s\n" % (before, after)
    sizes = [len(x) for x in (old, new) if x is not None]
    if any(size > DIFF_INPUT_LIMIT for size in sizes):
        return header + "(content too large to diff: %s bytes)\n" % " -> ".join(
            "absent" if x is None else str(len(x)) for x in (old, new)
        )
    old_text, new_text = _text(old), _text(new)
    if old_text is None or new_text is None:
        return header + "(binary content differs)\n"
    import difflib

    lines = difflib.unified_diff(
        old_text.splitlines(True), new_text.splitlines(True), before, after, lineterm="\n"
    )
    text = "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
                   for line in lines)
    if len(text) > DIFF_OUTPUT_LIMIT:
        text = text[:DIFF_OUTPUT_LIMIT] + "\n(diff cut at %d characters)\n" % DIFF_OUTPUT_LIMIT
    return text or header
