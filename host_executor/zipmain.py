"""The zipapp's ``__main__.py`` (``control_server.executor_bundle`` copies this file there).

zipimport never caches bytecode, so a zipapp compiles every module it imports on every
run, which is most of the executor's start-up time. So the first run unpacks the zipapp
next to itself, ``hostplane-executor-<digest>.d/`` (a temp folder renamed into place, so
it is complete or absent), and every run imports from there, where Python keeps
``__pycache__``. The folder is named by the digest, so it never goes stale. When it
cannot be made (read-only cache, full disk), the executor simply runs from the zip. The
launcher (``control_server.executor_bundle``) runs the copy's ``__main__.py`` directly once
it exists, with ``python3 -I -S``.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every host start-up time; annotations are strings
    from typing import Optional

_PACKAGE_MARK = os.path.join("host_executor", "__init__.py")


def _remove_tree(path: str) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def unpacked_dir(archive: str) -> Optional[str]:
    """The unpacked copy of ``archive`` (made on first use); None if it cannot be had."""
    root, ext = os.path.splitext(archive)
    if ext != ".pyz":
        return None
    target = root + ".d"
    if os.path.isfile(os.path.join(target, _PACKAGE_MARK)):
        return target
    tmp = "%s.%d.tmp" % (target, os.getpid())
    umask = os.umask(0o077)
    try:
        import zipfile

        with zipfile.ZipFile(archive) as bundle:
            bundle.extractall(tmp)
        os.rename(tmp, target)
    except Exception:
        # Another first run may have won the rename race: its copy is as good as ours.
        _remove_tree(tmp)
    finally:
        os.umask(umask)
    if os.path.isfile(os.path.join(target, _PACKAGE_MARK)):
        return target
    return None


def run() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    # The zipapp itself (first run, or no copy can be made), or the unpacked copy's
    # __main__.py, as the launcher runs it.
    unpacked = unpacked_dir(here) if os.path.isfile(here) else here
    if unpacked is not None:
        # ``python3 -I`` puts no script folder on sys.path: the copy goes first.
        if not sys.path or sys.path[0] != unpacked:
            sys.path.insert(0, unpacked)
        # The copy is our private cache: bytecode there is the point, whatever
        # PYTHONDONTWRITEBYTECODE says about source trees.
        sys.dont_write_bytecode = False
    from host_executor.main import main

    sys.exit(main())


if __name__ == "__main__":
    run()
