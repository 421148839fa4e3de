"""Who is calling the management API, and whether their key may do what they ask (pure:
no framework imports).

`Authorization: Bearer <secret>` is resolved in this order:

1. the operator bootstrap keys (`KEYPULSE_API_MANAGEMENT_KEYS`, configured hashed), each
   compared in constant time whatever the presented string looks like (their secrets
   predate the key format); scope `full` acts as an admin key, `read_only` as a read-only
   key. They exist to bootstrap an account and for the operator's tools only;
2. any other string must have the key format (`schemas.key_format.check_secret`): a
   malformed one is refused with the reason (`invalid_api_key`) before the registry is
   consulted;
3. the registry (the key service's follower) by the secret's sha256: unknown or deleted
   is `invalid_api_key`, revoked is `revoked_api_key`. The lookup is a dict lookup by
   the hash of the presented secret, which tells a timing observer nothing about any
   stored secret.

A failure of 2. or 3. is a guess (`AuthError.guess`): a presented secret that matched
nothing. The app counts guesses per source address (`Authenticator.throttle`,
`infra.http.auth_throttle`) to slow, then refuse, an address that keeps guessing; a
missing header or a revoked key is no guess (it takes the exact secret to be told
"revoked").

`authorize(caller, method)` then applies the access levels: admin keys may do everything
(keys, account, alert settings); read-only keys only read (GET, HEAD); full-access keys
are for the product API and are refused here (`insufficient_scope`). Error details name
key ids, never a secret.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from infra.http.auth_throttle import AuthThrottle
from infra.settings import ManagementKey
from schemas.key_format import Malformed, check_secret, hash_secret
from schemas.key_ledger import KeyRecord, KeyStatus
from schemas.keys import KeyAccess

__all__ = ["AuthError", "Authenticator", "Caller", "KeyLookup", "authorize", "throttled"]

T = TypeVar("T")

READS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Caller:
    key_id: str
    account_id: str
    access: KeyAccess
    bootstrap: bool = False
    """An operator bootstrap key from the settings (not a registry key)."""


class AuthError(Exception):
    """Why a request is refused: HTTP status, a machine code and a human detail;
    `guess` when a presented credential matched nothing (the brute-force limit counts it)."""

    def __init__(self, status: int, code: str, detail: str, *, guess: bool = False) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.guess = guess


class KeyLookup(Protocol):
    def key_by_hash(self, secret_hash: str) -> KeyRecord | None:
        """The registry's key with this hash; raises `Unavailable` while not ready."""
        ...


_BOOTSTRAP_ACCESS = {"full": KeyAccess.ADMIN, "read_only": KeyAccess.READ_ONLY}


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise AuthError(401, "invalid_api_key", "missing Authorization: Bearer <key>")
    scheme, _, secret = authorization.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise AuthError(401, "invalid_api_key", "expected Authorization: Bearer <key>")
    return secret.strip()


class Authenticator:
    """Maps `Authorization: Bearer <secret>` to a `Caller`. `throttle` counts the guesses
    by source address for whoever authenticates requests with it (the management API's
    dependency, the console's sign-in, `POST /verify`'s service tokens): one count per
    address across all three."""

    def __init__(
        self,
        bootstrap: list[ManagementKey],
        registry: KeyLookup,
        throttle: AuthThrottle | None = None,
    ) -> None:
        self._bootstrap = list(bootstrap)
        self._registry = registry
        self.throttle = throttle or AuthThrottle()

    def authenticate(self, authorization: str | None) -> Caller:
        secret = _bearer(authorization)
        digest = hash_secret(secret)
        operator = self._operator_key(digest)
        if operator is not None:
            return operator
        parsed = check_secret(secret)
        if isinstance(parsed, Malformed):
            raise AuthError(
                401, "invalid_api_key", f"malformed API key: {parsed.advice}", guess=True
            )
        return self._registry_key(digest)

    def resume(self, digest: str) -> Caller:
        """The caller whose secret hashes to `digest`, checked again now (the console's
        session keeps the hash of the key it was signed in with, never the secret): a key
        revoked or deleted since ends the session."""
        operator = self._operator_key(digest)
        if operator is not None:
            return operator
        return self._registry_key(digest)

    def _registry_key(self, digest: str) -> Caller:
        key = self._registry.key_by_hash(digest)
        if key is None or key.status is KeyStatus.DELETED:
            raise AuthError(401, "invalid_api_key", "unknown API key", guess=True)
        if key.status is KeyStatus.REVOKED:
            raise AuthError(401, "revoked_api_key", f"API key {key.key_id} has been revoked")
        return Caller(key.key_id, key.account_id, key.access)

    def _operator_key(self, digest: str) -> Caller | None:
        found: ManagementKey | None = None
        for key in self._bootstrap:  # every entry, so the time does not say which matched
            if hmac.compare_digest(key.secret_hash, digest):
                found = key
        if found is None:
            return None
        if found.revoked:
            raise AuthError(401, "revoked_api_key", f"API key {found.key_id} has been revoked")
        return Caller(found.key_id, found.account_id, _BOOTSTRAP_ACCESS[found.scope], True)


async def throttled(throttle: AuthThrottle, address: str | None, attempt: Callable[[], T]) -> T:
    """`attempt()` (an authentication) from `address`: refused with `TooManyFailures`
    while the address is blocked, without looking at its credential; an `AuthError` that
    is a guess is counted and its answer slowed before it propagates."""
    throttle.check(address)
    try:
        return attempt()
    except AuthError as exc:
        if exc.guess:
            await throttle.failed(address)
        raise


def authorize(caller: Caller, method: str) -> None:
    """Raise `AuthError` (403) unless the caller's access level allows `method` here."""
    if caller.access is KeyAccess.ADMIN:
        return
    if caller.access is KeyAccess.FULL:
        raise AuthError(
            403,
            "insufficient_scope",
            f"key {caller.key_id} is a full-access key, which is for the product API and "
            "cannot use the management API; use an admin key (or a read-only key to read)",
        )
    if method.upper() not in READS:
        raise AuthError(
            403,
            "insufficient_scope",
            f"key {caller.key_id} is read-only; this change needs an admin key",
        )
