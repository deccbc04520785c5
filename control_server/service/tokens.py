"""API tokens: created by ``hostplane tokens create``, stored hashed, checked per request.

A token reads ``hp_<id>_<secret>``: the id finds the row without scanning, the secret (32
random bytes) is what is checked. Only ``sha256$<salt>$<digest>`` of the secret is stored,
and digests are compared in constant time. The secret carries 256 bits of entropy, so a
salted SHA-256 is as strong as a slow hash here and keeps every request cheap.

No FastAPI here: the CLI uses this module without loading the web stack.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

from control_server.errors import InputError
from control_server.store.tokens import Engine, NameInUse, TokenTable

READER = "reader"
OPERATOR = "operator"
ROLES = (READER, OPERATOR)
PREFIX = "hp"
_TOKEN = re.compile(r"hp_([0-9]{1,18})_([A-Za-z0-9_-]{20,100})")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}")
# Writing last_used_at on every request would make every read a write transaction.
LAST_USED_EVERY = 60.0


@dataclass(frozen=True)
class TokenInfo:
    name: str
    role: str
    created_at: float
    last_used_at: float | None
    revoked_at: float | None


@dataclass(frozen=True)
class Principal:
    """Who made a request: the token's name and role."""

    name: str
    role: str

    @property
    def can_write(self) -> bool:
        return self.role == OPERATOR


def hash_secret(secret: str, salt: str | None = None) -> str:
    salt = salt if salt is not None else secrets.token_hex(16)
    digest = hashlib.sha256((salt + secret).encode("utf-8")).hexdigest()
    return f"sha256${salt}${digest}"


def secret_matches(secret: str, stored: str) -> bool:
    scheme, _, rest = stored.partition("$")
    salt, _, digest = rest.partition("$")
    if scheme != "sha256" or not digest:
        return False
    expected = hash_secret(secret, salt).rpartition("$")[2]
    return hmac.compare_digest(expected.encode("ascii"), digest.encode("ascii"))


class TokenStore:
    """API tokens in the job store's database (``store.tokens`` holds the SQL)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._table = TokenTable(engine)

    def create(self, name: str, role: str) -> str:
        """A new token for ``name`` (returned once, never stored). A revoked token's name
        can be used again; an active one's cannot."""
        if not _NAME.fullmatch(name):
            raise InputError(f"token name {name!r}: use letters, digits, '_', '.', '@', '-'")
        if role not in ROLES:
            raise InputError(f"role {role!r}: expected one of {', '.join(ROLES)}")
        secret = secrets.token_urlsafe(32)
        try:
            token_id = self._table.add(name, role, hash_secret(secret))
        except NameInUse:
            raise InputError(f"a token named {name!r} exists (revoke it first)") from None
        return f"{PREFIX}_{token_id}_{secret}"

    def revoke(self, name: str) -> bool:
        """False when no active token has that name."""
        return self._table.revoke(name)

    def list_tokens(self) -> list[TokenInfo]:
        return [TokenInfo(r.name, r.role, r.created_at, r.last_used_at, r.revoked_at)
                for r in self._table.all()]

    def verify(self, token: str) -> Principal | None:
        """The token's principal, or None when it is malformed, unknown, wrong or revoked."""
        match = _TOKEN.fullmatch(token)
        if match is None:
            return None
        token_id, secret = int(match.group(1)), match.group(2)
        row = self._table.get(token_id)
        if row is None or row.revoked_at is not None or not secret_matches(secret, row.hash):
            return None
        now = time.time()
        if row.last_used_at is None or now - row.last_used_at > LAST_USED_EVERY:
            self._table.touch(token_id, now)
        return Principal(row.name, row.role)
