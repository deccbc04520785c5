"""Running the app on uvicorn (what ``hostplane serve`` calls)."""

from __future__ import annotations

import logging

import uvicorn

from control_server.errors import InputError
from control_server.service.app import create_app
from control_server.service.context import ServeConfig, Service

GRACEFUL_SECONDS = 5  # open event streams get this long to end when serve stops


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[V6]:PORT``, or ``:PORT`` (on loopback, 127.0.0.1)."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(f"--listen {text!r}: expected HOST:PORT (e.g. 127.0.0.1:8421)")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


def serve(config: ServeConfig, log_level: str = "info") -> None:
    """Open everything (errors are reported before listening), then serve until stopped."""
    service = Service(config)
    logging.basicConfig(level=log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(service)
    server = uvicorn.Server(uvicorn.Config(
        app, host=config.host, port=config.port, log_level=log_level, lifespan="on",
        # The transports are written and tested against asyncio's own loop (the CLI's);
        # uvloop differs in details (a write to a closed pipe raises RuntimeError there).
        loop="asyncio",
        timeout_graceful_shutdown=GRACEFUL_SECONDS, proxy_headers=False,
        server_header=False,
    ))
    server.run()
