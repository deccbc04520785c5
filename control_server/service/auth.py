"""Bearer-token authentication for the routes: 401 without a valid token, 403 when a
``reader`` token asks for what needs ``operator``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from control_server.service.context import Service
from control_server.service.tokens import Principal

bearer = HTTPBearer(
    auto_error=False,
    description="A token from `hostplane tokens create NAME --role reader|operator`.",
)
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def service_of(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


def reader(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """Any valid token (a sync dependency: FastAPI runs its store read in a thread)."""
    if credentials is None:
        raise HTTPException(401, "missing bearer token (Authorization: Bearer TOKEN)",
                            headers=_CHALLENGE)
    principal = service_of(request).tokens.verify(credentials.credentials)
    if principal is None:
        raise HTTPException(401, "invalid or revoked token",
                            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    return principal


def operator(principal: Annotated[Principal, Depends(reader)]) -> Principal:
    if not principal.can_write:
        raise HTTPException(403, f"token {principal.name!r} has role {principal.role}; "
                                 "this needs operator")
    return principal


Reader = Annotated[Principal, Depends(reader)]
Operator = Annotated[Principal, Depends(operator)]
