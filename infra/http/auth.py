"""Management-key authentication for the HTTP API (pure: no framework imports)."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from enum import StrEnum

from infra.settings import ManagementKey


class Scope(StrEnum):
    FULL = "full"
    READ_ONLY = "read_only"


@dataclass(frozen=True)
class Caller:
    key_id: str
    account_id: str
    scope: Scope

    @property
    def can_write(self) -> bool:
        return self.scope is Scope.FULL


class AuthError(Exception):
    """Why a request is refused: HTTP status, a machine code and a human detail."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail


def hash_secret(secret: str) -> str:
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()


class Authenticator:
    """Maps `Authorization: Bearer <secret>` to a `Caller` by the secret's hash."""

    def __init__(self, keys: list[ManagementKey]) -> None:
        self._by_hash = {k.secret_hash: k for k in keys}

    def authenticate(self, authorization: str | None) -> Caller:
        if not authorization:
            raise AuthError(401, "invalid_api_key", "missing Authorization: Bearer <key>")
        scheme, _, secret = authorization.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise AuthError(401, "invalid_api_key", "expected Authorization: Bearer <key>")
        digest = hash_secret(secret.strip())
        key = None
        for known, candidate in self._by_hash.items():
            if hmac.compare_digest(known, digest):
                key = candidate
        if key is None:
            raise AuthError(401, "invalid_api_key", "unknown API key")
        if key.revoked:
            raise AuthError(401, "revoked_api_key", f"API key {key.key_id} has been revoked")
        return Caller(key.key_id, key.account_id, Scope(key.scope))

    @staticmethod
    def require_write(caller: Caller) -> None:
        if not caller.can_write:
            raise AuthError(
                403, "insufficient_scope", f"key {caller.key_id} is read_only; this needs full"
            )
