"""The zipapp's ``__main__.py`` (``control_server.executor_bundle`` copies this file there).

Run from the zipapp, or from its unpacked copy (as the launcher runs it): the work is in
``host_executor.start``. Kept this small on purpose: Python compiles the script it is
given on every run (about 0.7 ms for the ~240 lines now in ``start``), while the
modules it imports come from cached bytecode.
"""

import os
import sys

if __name__ == "__main__":
    _here = os.path.dirname(os.path.abspath(__file__))
    if os.path.isdir(_here) and sys.path[:1] != [_here]:
        sys.path.insert(0, _here)  # ``python3 -I`` puts no script folder on sys.path
    from host_executor.start import run

    run(_here)
