"""The interpreter's site directories, added only when a step needs them.

The launcher starts the executor with ``python3 -I -S``: no ``site`` module (its import,
the .pth files and sitecustomize cost every sequence several milliseconds of CPU), no user
site, no ``PYTHON*`` variables. The executor needs nothing but the standard library, except
the libvirt bindings, which live in the site directories (Debian's python3-libvirt in
``/usr/lib/python3/dist-packages``). So before importing ``libvirt``, ``ensure()`` runs
``site.main()``, which adds what a plain ``python3`` would have put on ``sys.path``: the
venv's or the system's site-packages and, as a plain ``python3`` would, the user's site
directory (when the real and effective ids match). Without ``-S`` (``python3 -m
host_executor``) it does nothing.
"""

from __future__ import annotations

import sys

_done = False


def ensure() -> None:
    """Make ``import libvirt`` find what a plain ``python3`` finds; never raises."""
    global _done
    if _done or not sys.flags.no_site:
        return
    _done = True
    try:
        import os
        import site

        if site.ENABLE_USER_SITE is None:  # -I turned it off; a plain python3 would not
            site.ENABLE_USER_SITE = os.getuid() == os.geteuid() and os.getgid() == os.getegid()
        site.main()
    except Exception:  # then libvirt's import fails, and says so
        pass
