"""A stand-in control server for the lease fault tests, run as its own process:

    python lease_holder.py URL JOB TTL renew|write

Registers as a server, claims JOB for TTL seconds and prints ``{"server", "token"}`` as a
JSON line. Then, ``renew``: renews its lease every TTL/10 s, forever; ``write``: every
second records a fenced note for the job, renews its lease and prints ``idle``, until a
write is refused: then it prints ``lease lost: …`` and exits 3, writing nothing more.
"""

from __future__ import annotations

import json
import sys
import time

from control_server.store import queue, servers
from control_server.store.engine import make_engine
from control_server.store.fenced import FencedJobStore


def main() -> int:
    url, job, ttl, mode = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    engine = make_engine(url)
    me = servers.register(engine)
    lease = queue.claim(engine, job, me.id, ttl)
    if lease is None:
        print("not claimable", flush=True)
        return 2
    print(json.dumps({"server": me.id, "token": lease.token}), flush=True)
    if mode == "renew":
        while True:
            time.sleep(ttl / 10)
            queue.renew(engine, me.id, [lease], ttl)
    fenced = FencedJobStore(engine, lease)
    n = 0
    while True:
        try:
            fenced.record_note(job, "holder_write", {"n": n})
        except queue.LeaseLost as lost:
            print(f"lease lost: {lost}", flush=True)
            return 3
        n += 1
        queue.renew(engine, me.id, [lease], ttl)
        print("idle", flush=True)
        time.sleep(1.0)  # the tests pause it here, outside any transaction


if __name__ == "__main__":
    sys.exit(main())
