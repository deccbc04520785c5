"""The OpenAPI document: generated from the app, kept in the repo as docs/openapi.json.

    python -m control_server.service.openapi docs/openapi.json    # write it
    python -m control_server.service.openapi --check docs/openapi.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from control_server.service.models import (
    Accepted,
    Failure,
    HostEventData,
    JobEvent,
    Message,
    PlacementRejected,
    ValidationFailed,
)

REPO_FILE = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
# Models only named in hand-written responses (see app._json): FastAPI does not add them.
EXTRA_MODELS: tuple[type[BaseModel], ...] = (Accepted, Failure, HostEventData, JobEvent,
                                              Message, PlacementRejected, ValidationFailed)


def install(app: FastAPI) -> None:
    def document() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(title=app.title, version=app.version,
                              description=app.description, routes=app.routes)
            schemas = doc.setdefault("components", {}).setdefault("schemas", {})
            for model in EXTRA_MODELS:
                schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
                for name, sub in schema.pop("$defs", {}).items():
                    schemas.setdefault(name, sub)
                schemas.setdefault(model.__name__, schema)
            doc["components"]["schemas"] = dict(sorted(schemas.items()))
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = document  # type: ignore[method-assign]


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=False, ensure_ascii=False) + "\n"


def current() -> str:
    from control_server.service.app import create_app

    return render(create_app().openapi())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m control_server.service.openapi")
    parser.add_argument("path", nargs="?", type=Path, default=REPO_FILE)
    parser.add_argument("--check", action="store_true", help="Fail if the file differs.")
    args = parser.parse_args(argv)
    text = current()
    if args.check:
        same = args.path.is_file() and args.path.read_text(encoding="utf-8") == text
        print(f"{args.path}: {'up to date' if same else 'OUT OF DATE'}")
        return 0 if same else 1
    args.path.write_text(text, encoding="utf-8")
    print(f"wrote {args.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
