"""How the executor knows its own digest.

The control server builds the zipapp as ``hostplane-executor-<digest>.pyz`` and embeds the
digest as ``_digest.txt``. Run from the zipapp, the executor reads that file (or, failing
that, parses its own file name); run as a module from a source tree, it is ``"dev"``.
"""

from __future__ import annotations

import os
import sys
from typing import Optional

from host_executor import protocol


def digest_from_name(path: str) -> Optional[str]:
    """``abc123`` from ``.../hostplane-executor-abc123.pyz``; None for any other name."""
    name = os.path.basename(path)
    prefix, suffix = protocol.EXECUTOR_NAME_PREFIX, protocol.EXECUTOR_NAME_SUFFIX
    if name.startswith(prefix) and name.endswith(suffix) and len(name) > len(prefix) + len(suffix):
        return name[len(prefix) : -len(suffix)]
    return None


def executor_digest() -> str:
    loader = globals().get("__loader__")
    archive = getattr(loader, "archive", None)  # set by zipimport: we run from a zip
    if isinstance(archive, str):
        try:
            data = loader.get_data(os.path.join(archive, protocol.EXECUTOR_DIGEST_FILE))  # type: ignore[union-attr]
            text = str(data.decode("ascii")).strip()
            if text:
                return text
        except (OSError, UnicodeDecodeError):
            pass
        return digest_from_name(archive) or "unknown"
    return digest_from_name(sys.argv[0] if sys.argv else "") or "dev"
