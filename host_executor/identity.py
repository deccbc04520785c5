"""How the executor knows its own digest.

The control server builds the zipapp as ``hostplane-executor-<digest>.pyz`` and embeds the
digest as ``_digest.txt`` beside the package. Run from the zipapp (or its unpacked copy,
see ``zipmain``), the executor reads that file, or failing that parses its own file name
(``sys.argv[0]``); run as a module from a source tree, it is ``"dev"``.
"""

from __future__ import annotations

import os
import sys

from host_executor import protocol

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every host start-up time; annotations are strings
    from typing import Optional


def digest_from_name(path: str) -> Optional[str]:
    """``abc123`` from ``.../hostplane-executor-abc123.pyz``; None for any other name."""
    name = os.path.basename(path)
    prefix, suffix = protocol.EXECUTOR_NAME_PREFIX, protocol.EXECUTOR_NAME_SUFFIX
    if name.startswith(prefix) and name.endswith(suffix) and len(name) > len(prefix) + len(suffix):
        return name[len(prefix) : -len(suffix)]
    return None


def _embedded_digest() -> Optional[str]:
    """``_digest.txt`` beside the ``host_executor`` package: in the zip or its unpacked copy."""
    loader = globals().get("__loader__")
    archive = getattr(loader, "archive", None)  # set by zipimport: we run from the zip
    try:
        if isinstance(archive, str):
            data = loader.get_data(os.path.join(archive, protocol.EXECUTOR_DIGEST_FILE))  # type: ignore[union-attr]
        else:
            root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
            with open(os.path.join(root, protocol.EXECUTOR_DIGEST_FILE), "rb") as handle:
                data = handle.read()
        return str(data.decode("ascii")).strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def executor_digest() -> str:
    """The digest of the running executor; "dev" when run from a source tree."""
    digest = _embedded_digest()
    if digest:
        return digest
    return digest_from_name(sys.argv[0] if sys.argv else "") or "dev"
