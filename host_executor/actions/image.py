"""``image`` and ``image_list``: base images in hostplane's image folder, named by content.

The folder (``dir``, default ``/var/lib/hostplane/base``) holds each image once per
content, as ``sha256-HEX.FORMAT``; ``names/NAME`` is a symlink to the content a name
means; ``.partial/`` holds uploads on their way in. It is a plain folder, not a libvirt
pool: an instance's overlay records the content file itself as its backing file, so a
name pushed again later (new content) never changes what an instance reads.

``image`` states:

- ``prepare`` (``digest``, ``format``, ``name``): the content is here: ``names/NAME``
  points at it and ``data.present`` is true. Else ``data.partial`` is the file the upload
  appends to and ``data.offset`` how many of its bytes are already there (a resume).
- ``present`` with ``digest``: the upload is complete: its size is checked against
  ``size``, its sha256 against ``digest``, then it is renamed to its final name and the
  name linked. A mismatch deletes the partial file (so the next push starts over); a
  short file stays (the next push resumes it). Content already here: the name is linked.
- ``present`` without ``digest``: ``name`` must exist (``launch_instance`` checks it
  before creating anything); ``data`` is the image (path, digest, format, size).
- ``absent``: the name is removed, and its content when no other name refers to it;
  refused while an instance's qcow2 overlay in ``overlay_dirs`` is backed by it. ``name:
  sha256:HEX`` removes content no name refers to any more (a name was pushed again).

``image_list`` reports every image: name (None for content no name refers to), digest,
format, size, path, and the instances whose overlays use it.
"""

from __future__ import annotations

import hashlib
import os
import re

from host_executor import fsutil, protocol
from host_executor.errors import StepFailed
from host_executor.step import StepResult

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every host start-up time; annotations are strings
    from typing import Any, Dict, List, Optional

    from host_executor.step import StepContext

DEFAULT_DIR = "/var/lib/hostplane/base"
DEFAULT_OVERLAY_DIRS = ("/var/lib/hostplane/images",)
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
DIGEST_RE = re.compile(r"[0-9a-f]{64}\Z")
CONTENT_RE = re.compile(r"sha256-([0-9a-f]{64})\.(qcow2|raw)\Z")
UNNAMED_RE = re.compile(r"sha256:([0-9a-f]{64})\Z")  # state absent: content by its digest
QCOW2_MAGIC = b"QFI\xfb"
CHUNK = 1 << 20
PUSH_HINT = "push it with: hostplane image push FILE --name %s -i INVENTORY HOSTS"


def check_args(args: Dict[str, Any]) -> None:
    if not os.path.isabs(args.get("dir") or DEFAULT_DIR):
        raise protocol.ProtocolError("expected an absolute path", "dir")
    dirs = args.get("overlay_dirs") or []
    if not all(isinstance(d, str) and os.path.isabs(d) for d in dirs):
        raise protocol.ProtocolError("expected a list of absolute paths", "overlay_dirs")
    if "name" not in args:
        return  # image_list (its schema has no name); image's requires one
    state = args.get("state") or "present"
    if state == "absent" and UNNAMED_RE.match(args["name"]):
        return
    if not NAME_RE.match(args["name"]):
        raise protocol.ProtocolError("expected letters, digits, '_', '.', '-' (at most 64)", "name")
    digest = args.get("digest")
    if digest is not None and not DIGEST_RE.match(digest):
        raise protocol.ProtocolError("expected 64 lowercase hex digits (sha256)", "digest")
    if state == "prepare":
        for key in ("digest", "format"):
            if args.get(key) is None:
                raise protocol.ProtocolError("required for state prepare", key)
    if digest is not None and args.get("format") is None:
        raise protocol.ProtocolError("required with digest", "format")


def content_file(folder: str, digest: str, fmt: str) -> str:
    return os.path.join(folder, "sha256-%s.%s" % (digest, fmt))


def run_image(args: Dict[str, Any], ctx: StepContext) -> StepResult:
    folder = args.get("dir") or DEFAULT_DIR
    state = args.get("state") or "present"
    try:
        if state == "prepare":
            return _prepare(folder, args, ctx)
        if state == "absent":
            return _absent(folder, args, ctx)
        if args.get("digest"):
            return _commit(folder, args, ctx)
        return _require(folder, args["name"])
    except OSError as exc:
        raise StepFailed("image %s in %s: %s" % (args["name"], folder, exc)) from None


def run_image_list(args: Dict[str, Any], ctx: StepContext) -> StepResult:
    folder = args.get("dir") or DEFAULT_DIR
    images = list_images(folder, args.get("overlay_dirs") or DEFAULT_OVERLAY_DIRS)
    return StepResult("ok", msg="%d image(s) in %s" % (len(images), folder),
                      data={"dir": folder, "images": images})


# --- what is there ------------------------------------------------------------------


def _named(folder: str, name: str) -> Optional[Dict[str, Any]]:
    """The content ``names/NAME`` points at, or None (no such name, or a dangling link)."""
    link = os.path.join(folder, "names", name)
    try:
        target = os.readlink(link)
    except OSError:
        return None
    found = CONTENT_RE.match(os.path.basename(target))
    path = os.path.join(folder, os.path.basename(target))
    if found is None or not os.path.isfile(path):
        return None
    return {"name": name, "digest": found.group(1), "format": found.group(2), "path": path,
            "size": os.stat(path).st_size}


def _names_of(folder: str) -> Dict[str, List[str]]:
    """content file name -> the names pointing at it."""
    out: Dict[str, List[str]] = {}
    names_dir = os.path.join(folder, "names")
    for name in sorted(os.listdir(names_dir)) if os.path.isdir(names_dir) else []:
        try:
            out.setdefault(os.path.basename(os.readlink(os.path.join(names_dir, name))), []).append(name)
        except OSError:
            continue
    return out


def backing_file(path: str) -> Optional[str]:
    """The backing file a qcow2 image's header names, resolved; None for anything else."""
    try:
        with open(path, "rb") as handle:
            header = handle.read(20)
            if len(header) < 20 or header[:4] != QCOW2_MAGIC:
                return None
            offset = int.from_bytes(header[8:16], "big")
            length = int.from_bytes(header[16:20], "big")
            if not offset or not 0 < length <= 4096:
                return None
            handle.seek(offset)
            name = handle.read(length).decode("utf-8", "replace")
    except OSError:
        return None
    return os.path.realpath(os.path.join(os.path.dirname(path), name))


def users_of(content: str, overlay_dirs: Any) -> List[str]:
    """Instances (overlay file names without ``.qcow2``) whose disk is backed by ``content``."""
    wanted = os.path.realpath(content)
    users = []
    for folder in overlay_dirs:
        for entry in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
            path = os.path.join(folder, entry)
            if os.path.isfile(path) and backing_file(path) == wanted:
                users.append(entry[:-6] if entry.endswith(".qcow2") else entry)
    return users


def list_images(folder: str, overlay_dirs: Any) -> List[Dict[str, Any]]:
    names = _names_of(folder)
    images = []
    for entry in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        found = CONTENT_RE.match(entry)
        if found is None:
            continue
        path = os.path.join(folder, entry)
        base: Dict[str, Any] = {"digest": found.group(1), "format": found.group(2), "path": path,
                "size": os.stat(path).st_size, "used_by": users_of(path, overlay_dirs)}
        named: List[Optional[str]] = [None]
        if entry in names:
            named = list(names[entry])
        for name in named:
            images.append(dict(base, name=name))
    return sorted(images, key=lambda i: (i["name"] is None, i["name"] or "", i["digest"]))


def _require(folder: str, name: str) -> StepResult:
    found = _named(folder, name)
    if found is None:
        raise StepFailed("image %s is not on this host (%s); %s"
                         % (name, folder, PUSH_HINT % name), data={"name": name, "exists": False})
    found["exists"] = True
    return StepResult("ok", msg="image %s is sha256:%s (%s, %d bytes)"
                      % (name, found["digest"], found["format"], found["size"]), data=found)


# --- changes ------------------------------------------------------------------------


def _result(msg: str, changes: List[str], data: Dict[str, Any], ctx: StepContext) -> StepResult:
    if not changes:
        return StepResult("ok", msg=msg, data=data)
    would = " (check mode) would be" if ctx.check else ""
    return StepResult("changed", msg="%s%s: %s" % (msg, would, "; ".join(changes)), data=data)


def _mkdirs(folder: str, changes: List[str], check: bool) -> None:
    for path, mode in ((folder, 0o755), (os.path.join(folder, "names"), 0o755),
                       (os.path.join(folder, ".partial"), 0o700)):
        if not os.path.isdir(path):
            changes.append("created %s" % path)
            if not check:
                os.makedirs(path, exist_ok=True)
                os.chmod(path, mode)


def _link(folder: str, name: str, content: str, changes: List[str], check: bool) -> None:
    """Point ``names/NAME`` at ``content`` (atomically: a new link renamed over the old)."""
    link = os.path.join(folder, "names", name)
    target = os.path.join("..", os.path.basename(content))
    try:
        old: Optional[str] = os.readlink(link)
    except OSError:
        old = None
    if old == target:
        return
    changes.append("name %s now sha256:%s%s" % (
        name, CONTENT_RE.match(os.path.basename(content)).group(1),  # type: ignore[union-attr]
        " (was %s)" % os.path.basename(old) if old else ""))
    if check:
        return
    tmp = "%s.%d.tmp" % (link, os.getpid())
    os.symlink(target, tmp)
    os.replace(tmp, link)
    fsutil.fsync_dir(os.path.dirname(link))


def _prepare(folder: str, args: Dict[str, Any], ctx: StepContext) -> StepResult:
    changes: List[str] = []
    content = content_file(folder, args["digest"], args["format"])
    partial = os.path.join(folder, ".partial", os.path.basename(content))
    _mkdirs(folder, changes, ctx.check)
    data: Dict[str, Any] = {"name": args["name"], "digest": args["digest"], "path": content}
    if os.path.isfile(content):
        _link(folder, args["name"], content, changes, ctx.check)
        data.update(present=True, size=os.stat(content).st_size)
        msg = "image %s: sha256:%s is here" % (args["name"], args["digest"])
    else:
        offset = os.stat(partial).st_size if os.path.isfile(partial) else 0
        data.update(present=False, partial=partial, offset=offset)
        msg = "image %s: sha256:%s to upload%s" % (
            args["name"], args["digest"], " (resuming at byte %d)" % offset if offset else "")
    data["changes"] = changes
    return _result(msg, changes, data, ctx)


def _sha256(path: str, ctx: StepContext) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        chunk = handle.read(CHUNK)
        while chunk:
            digest.update(chunk)
            chunk = handle.read(CHUNK)
            if ctx.cancel.is_set():
                raise StepFailed("cancelled while checking %s: %s" % (path, ctx.cancel.reason))
    return digest.hexdigest()


def _verify(partial: str, args: Dict[str, Any], ctx: StepContext) -> None:
    """Fail unless ``partial`` is the whole upload; remove it when it can never be."""
    if not os.path.isfile(partial):
        raise StepFailed("image %s (sha256:%s) is not on this host and no upload of it is under "
                         "way; %s" % (args["name"], args["digest"], PUSH_HINT % args["name"]))
    have, want = os.stat(partial).st_size, args.get("size")  # type: int, Optional[int]
    if want is not None and have < want:
        raise StepFailed("upload of image %s is incomplete: %d of %d bytes in %s (push again "
                         "to resume)" % (args["name"], have, want, partial),
                         data={"offset": have, "size": want})
    got = None if want is not None and have > want else _sha256(partial, ctx)
    if got != args["digest"]:
        os.unlink(partial)
        why = "%d bytes, expected %s" % (have, want) if got is None else "sha256 %s" % got
        raise StepFailed("upload of image %s does not match sha256:%s (%s): removed %s, push "
                         "again" % (args["name"], args["digest"], why, partial))


def _commit(folder: str, args: Dict[str, Any], ctx: StepContext) -> StepResult:
    changes: List[str] = []
    content = content_file(folder, args["digest"], args["format"])
    _mkdirs(folder, changes, ctx.check)
    if not os.path.isfile(content):
        partial = os.path.join(folder, ".partial", os.path.basename(content))
        _verify(partial, args, ctx)
        changes.append("verified and stored %s" % content)
        if not ctx.check:
            os.chmod(partial, 0o644)  # QEMU (often another user) reads backing files
            with open(partial, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(partial, content)
            fsutil.fsync_dir(folder)
    _link(folder, args["name"], content, changes, ctx.check)
    size = os.stat(content).st_size if os.path.isfile(content) else args.get("size")
    data = {"name": args["name"], "digest": args["digest"], "format": args["format"],
            "path": content, "size": size, "changes": changes}
    return _result("image %s is sha256:%s" % (args["name"], args["digest"]), changes, data, ctx)


def _absent_content(folder: str, digest: str, args: Dict[str, Any],
                    ctx: StepContext) -> StepResult:
    """``name: sha256:HEX``: content that no name refers to any more (a name pushed again)."""
    names = _names_of(folder)
    changes = []
    for entry in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        found = CONTENT_RE.match(entry)
        if found is None or found.group(1) != digest:
            continue
        if names.get(entry):
            raise StepFailed("sha256:%s is still image %s: remove %s instead"
                             % (digest, ", ".join(names[entry]), "those names" if
                                len(names[entry]) > 1 else "that name"))
        path = os.path.join(folder, entry)
        _delete_unused({"name": args["name"], "path": path}, args.get("overlay_dirs")
                       or DEFAULT_OVERLAY_DIRS, ctx)
        changes.append("deleted %s" % path)
    data = {"name": args["name"], "digest": digest, "exists": False, "changes": changes}
    if not changes:
        return StepResult("ok", msg="image %s is absent" % args["name"], data=data)
    return _result("image %s" % args["name"], changes, data, ctx)


def _absent(folder: str, args: Dict[str, Any], ctx: StepContext) -> StepResult:
    name = args["name"]
    unnamed = UNNAMED_RE.match(name)
    if unnamed is not None:
        return _absent_content(folder, unnamed.group(1), args, ctx)
    found = _named(folder, name)
    link = os.path.join(folder, "names", name)
    if found is None:
        if os.path.lexists(link) and not ctx.check:
            os.unlink(link)  # a dangling name: nothing of value behind it
        return StepResult("ok", msg="image %s is absent" % name, data={"name": name, "exists": False})
    content = found["path"]
    others = [n for n in _names_of(folder).get(os.path.basename(content), []) if n != name]
    if not others:
        _delete_unused(found, args.get("overlay_dirs") or DEFAULT_OVERLAY_DIRS, ctx)
    changes = ["removed name %s" % name] + ([] if others else ["deleted %s" % content])
    if not ctx.check:
        os.unlink(link)
        fsutil.fsync_dir(os.path.dirname(link))
    return _result("image %s" % name, changes,
                   dict(found, exists=False, changes=changes, kept_for=others), ctx)


def _delete_unused(found: Dict[str, Any], overlay_dirs: Any, ctx: StepContext) -> None:
    """Delete an image's content unless an instance's overlay is backed by it. The content
    is moved aside first, so an overlay created meanwhile (a launch on this host) either
    is seen by the scan after the move, or fails to find its backing file: never an
    instance left on a deleted base."""
    content = found["path"]
    aside = "%s.removing.%d" % (content, os.getpid())
    if not ctx.check:
        os.rename(content, aside)
    users = users_of(content, overlay_dirs)
    if users:
        if not ctx.check:
            os.rename(aside, content)
        many = len(users) > 1
        raise StepFailed("image %s is in use by instance%s %s (their disks are overlays on it); "
                         "terminate %s first" % (found["name"], "s" if many else "",
                                                 ", ".join(users), "them" if many else "it"),
                         data=dict(found, used_by=users))
    if not ctx.check:
        os.unlink(aside)
        fsutil.fsync_dir(os.path.dirname(content))
