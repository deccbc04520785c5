"""Host events: what happened on a host (an instance changed state, the host went away).

Today serve records the events it learns from job results (``instance_state``,
``host_reachable``, ``host_unreachable``). The host event listener (a connection per host
running ``executor --watch-domains``; not built yet) is to hand each event it reads to
``FleetState.apply_watch_event``, which keeps the instances current and records
``domain_started``/``domain_crashed``/... here: ``/v1/events`` streams whatever lands here.
The table's reads and writes live in ``store.hostevents``.
"""

from __future__ import annotations

from control_server.store.hostevents import HostEvent as HostEvent
from control_server.store.hostevents import HostEventLog as HostEventLog

INSTANCE_STATE = "instance_state"
HOST_REACHABLE = "host_reachable"
HOST_UNREACHABLE = "host_unreachable"
