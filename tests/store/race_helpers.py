"""Racing store calls from several threads, each with its own engine (as servers would)."""

from __future__ import annotations

import threading
from collections.abc import Callable


def race(count: int, body: Callable[[int], None]) -> None:
    """Run ``body(0..count-1)`` in ``count`` threads released at once; re-raise the first
    error one of them hit."""
    errors: list[BaseException] = []
    start = threading.Barrier(count)

    def one(i: int) -> None:
        try:
            start.wait()
            body(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
