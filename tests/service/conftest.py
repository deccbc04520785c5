"""The serve process the HTTP API tests share (one per session: starting one costs a
couple of seconds), with its tokens. Helpers are in ``service_helpers``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from service_helpers import (
    Fleet,
    create_token,
    free_port,
    start_server,
    write_inventory,
    write_templates,
)


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    workdir = tmp_path_factory.mktemp("serve")
    inventory = write_inventory(workdir / "hosts.ini", free_port())
    templates = write_templates(workdir / "templates")
    db = f"sqlite:///{workdir / 'state' / 'hostplane.db'}"
    operator = create_token(db, "ops", "operator")
    reader = create_token(db, "dash", "reader")
    server = start_server(workdir, inventory, db, "--templates", str(templates))
    try:
        yield Fleet(server, operator, reader, workdir, inventory, templates)
    finally:
        server.stop()
