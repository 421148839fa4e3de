"""What a presented key is worth (pure): the verdict from the key's record, the parse of
the presented string, the time, the client address and the environment.

Checks, in order: malformed (`schemas.key_format.check_secret`, with its hint), unknown
(well-formed, no key has this secret), deleted, revoked, expired (`expires_at` at or
before `now`), ip_not_allowed (the key has an allow-list and the client is not in it, or
no client address was given), then valid. The render quota (`quota_exceeded`) is decided
after a valid verdict by `streams.client.quota` and attached with `with_quota`.

Environment flags: a live key verified in `development`, or a test key in `production`,
is still `valid`, with `warning` set and the warning appended to `message`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from schemas.cidr import Network, allows, parse_address
from schemas.key_format import Malformed
from schemas.key_ledger import KeyRecord, KeyStatus
from schemas.keys import KeyAccess, KeyType
from schemas.requests import VerificationOutcome
from streams.client.quota import QuotaState

Verdict = VerificationOutcome
"""The verdicts are the outcomes the verification events carry (one enum, in `schemas`)."""


class Environment(StrEnum):
    PRODUCTION = "production"
    DEVELOPMENT = "development"


@dataclass(frozen=True, slots=True)
class Verification:
    """A verdict and what the API needs to act on it. `message` tells the developer what
    to do; `hint` is the malformed reason (`schemas.key_format.Malformed`); `watermark` is
    True for test keys (responses must be watermarked); `quota` is set for test-key
    renders; `warning` flags a key type that does not fit the environment."""

    verdict: Verdict
    message: str
    key_id: str | None = None
    account_id: str | None = None
    key_type: KeyType | None = None
    access: KeyAccess | None = None
    watermark: bool = False
    hint: Malformed | None = None
    warning: str | None = None
    quota: QuotaState | None = None

    @property
    def valid(self) -> bool:
        return self.verdict is Verdict.VALID


LIVE_IN_DEVELOPMENT = (
    "a live key is used in development: use a test key (pk_test_) outside production"
)
TEST_IN_PRODUCTION = (
    "a test key is used in production: its responses are watermarked and its renders are "
    "limited to 100 per UTC day; use a live key (pk_live_)"
)


def malformed(reason: Malformed) -> Verification:
    return Verification(Verdict.MALFORMED, f"malformed key: {reason.advice}", hint=reason)


UNKNOWN = Verification(
    Verdict.UNKNOWN,
    "unknown key: it is well-formed but no key has this secret; copy it again from the "
    "dashboard, and check it belongs to this keypulse deployment and was not deleted",
)


def environment_warning(key_type: KeyType, environment: Environment) -> str | None:
    if key_type is KeyType.LIVE and environment is Environment.DEVELOPMENT:
        return LIVE_IN_DEVELOPMENT
    if key_type is KeyType.TEST and environment is Environment.PRODUCTION:
        return TEST_IN_PRODUCTION
    return None


def _refused(record: KeyRecord, verdict: Verdict, message: str) -> Verification:
    return Verification(
        verdict,
        message,
        record.key_id,
        record.account_id,
        record.key_type,
        record.access,
        record.key_type is KeyType.TEST,
    )


def _use_instead(record: KeyRecord) -> str:
    if record.replaced_by is not None:
        return f"use its replacement {record.replaced_by}"
    return "create a new key in the dashboard"


def _ip_refusal(record: KeyRecord, client_ip: str | None) -> Verification:
    networks = ", ".join(record.allowed_cidrs)
    if client_ip is None:
        message = (
            f"key {record.key_id} may only be used from {networks}; pass client_ip "
            "(the request's source address) so that it can be checked"
        )
    else:
        message = (
            f"key {record.key_id} may not be used from {client_ip} (allowed: {networks}); "
            "call from an allowed network or add this address to the key's allow-list"
        )
    return _refused(record, Verdict.IP_NOT_ALLOWED, message)


def decide(
    record: KeyRecord | None,
    now: datetime,
    client_ip: str | None,
    networks: tuple[Network, ...],
    environment: Environment,
) -> Verification:
    """The verdict on a well-formed secret whose key is `record` (None: unknown).
    `networks` are the compiled `record.allowed_cidrs` (`schemas.cidr`); a key
    with an allow-list admits only clients in those networks."""
    if record is None:
        return UNKNOWN
    status = record.status
    if status is not KeyStatus.ACTIVE:
        if status is KeyStatus.DELETED:
            return _refused(
                record,
                Verdict.DELETED,
                f"key {record.key_id} was deleted; {_use_instead(record)}",
            )
        when = f" at {record.revoked_at.isoformat()}" if record.revoked_at else ""
        return _refused(
            record,
            Verdict.REVOKED,
            f"key {record.key_id} was revoked{when}; {_use_instead(record)}",
        )
    expires_at = record.expires_at
    if expires_at is not None and expires_at <= now:
        return _refused(
            record,
            Verdict.EXPIRED,
            f"key {record.key_id} expired at {expires_at.isoformat()}; {_use_instead(record)}",
        )
    if record.allowed_cidrs:
        address = None if client_ip is None else parse_address(client_ip)
        if address is None or not allows(networks, address):
            return _ip_refusal(record, client_ip)
    test = record.key_type is KeyType.TEST
    warning = environment_warning(record.key_type, environment)
    message = f"key {record.key_id} is valid"
    if test:
        message += " (a test key: watermark the response; 100 renders per UTC day)"
    if warning is not None:
        message += f"; warning: {warning}"
    return Verification(
        Verdict.VALID,
        message,
        record.key_id,
        record.account_id,
        record.key_type,
        record.access,
        test,
        None,
        warning,
    )


def with_quota(result: Verification, state: QuotaState) -> Verification:
    """A valid test-key verdict with its render's quota answer (`quota_exceeded` when
    the render was refused)."""
    if state.admitted:
        return replace(result, quota=state)
    message = (
        f"test key {result.key_id} has used its {state.limit} renders for today (a UTC "
        f"day: the quota resets at 00:00 UTC, in {state.reset_s} s); use a live key for "
        "more renders"
    )
    return replace(result, verdict=Verdict.QUOTA_EXCEEDED, message=message, quota=state)
