"""Key and account commands, and the pure decision that turns one into events.

`decide(ledger, command, ctx)` returns the events a command makes on the account's ledger
(checked with `schemas.key_ledger.check`, never applied here) plus what the caller is
told, or raises `CommandRefused` with a stable code. The key service applies the events
to a scratch copy before deciding the next command of a group. It takes the time and
every random value from `ctx`, so it is deterministic.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from ipaddress import IPv4Address, IPv6Address, ip_network
from typing import Any
from uuid import UUID

import orjson

from schemas.key_format import hash_secret, hint
from schemas.key_ledger import AccountLedger, KeyRecord, KeyStatus, Refusal, check
from schemas.keys import (
    MAX_ALLOWED_CIDRS,
    AccountCreated,
    KeyAccess,
    KeyAllowListChanged,
    KeyCreated,
    KeyDeleted,
    KeyEventModel,
    KeyRenamed,
    KeyRevoked,
    KeyRolled,
    KeyType,
    PlanChanged,
    RevokeReason,
)
from schemas.plans import Plan

IDEMPOTENCY_TTL = timedelta(hours=24)
MAX_NAME_LENGTH = 100
_GENERIC_NAME = re.compile(
    r"(key|test|api[ _-]?key|my[ _-]?key|new[ _-]?key|default|temp|tmp|foo|asdf)[ _-]?\d*",
    re.IGNORECASE,
)
GENERIC_NAME_WARNING = (
    "{name!r} does not say what the key is for; a descriptive name such as "
    "'Production web app' or 'Staging analytics' makes it easier to know what breaks "
    "when you revoke it"
)


@dataclass(frozen=True)
class CreateAccount:
    account_id: str
    plan: Plan


@dataclass(frozen=True)
class ChangePlan:
    account_id: str
    plan: Plan


OVERLAPS: dict[str, timedelta] = {
    "0": timedelta(0),
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
}
"""How long a rolled key keeps working next to its replacement (the allowed values)."""
_DURATION = re.compile(r"([1-9][0-9]{0,5})([mhd])")
_UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}
MAX_EXPIRES_IN = timedelta(days=3650)


@dataclass(frozen=True)
class CreateKey:
    account_id: str
    name: str
    key_type: KeyType
    access: KeyAccess = KeyAccess.FULL
    idempotency_key: str | None = None
    request_hash: str | None = None
    allowed_cidrs: tuple[str, ...] = ()
    """As given (a bare address, host bits set, ...): normalised by the decision."""
    expires_at: datetime | None = None
    expires_in: timedelta | None = None
    """An alternative to `expires_at`: the key expires this long after its creation."""


@dataclass(frozen=True)
class RenameKey:
    account_id: str
    key_id: str
    name: str


@dataclass(frozen=True)
class RevokeKey:
    account_id: str
    key_id: str
    reason: RevokeReason = RevokeReason.USER_REQUEST


@dataclass(frozen=True)
class DeleteKey:
    account_id: str
    key_id: str


@dataclass(frozen=True)
class SetAllowList:
    """Replace the key's allow-list (empty: usable from anywhere)."""

    account_id: str
    key_id: str
    allowed_cidrs: tuple[str, ...]


@dataclass(frozen=True)
class RollKey:
    """Replace the key by a new one; the old one works `overlap` longer (`OVERLAPS`)."""

    account_id: str
    key_id: str
    overlap: timedelta
    idempotency_key: str | None = None
    request_hash: str | None = None


Command = (
    CreateAccount
    | ChangePlan
    | CreateKey
    | RenameKey
    | RevokeKey
    | DeleteKey
    | SetAllowList
    | RollKey
)


class CommandRefused(Exception):
    """A command the account's state does not allow; `code` is stable (problem+json)."""

    def __init__(self, code: str, detail: str, status: int, **extra: Any) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.status = status
        self.extra = extra


@dataclass(frozen=True)
class Context:
    """Everything a decision takes from outside: the time, who acts, and fresh ids."""

    now: datetime
    actor: str
    source_ip: IPv4Address | IPv6Address | None
    new_event_id: Callable[[], UUID]
    new_key_id: Callable[[], str]
    new_secret: Callable[[str], str]


@dataclass
class Decision:
    """The events to append and the answer for the caller once they are applied."""

    events: list[KeyEventModel] = field(default_factory=list)
    account_id: str = ""
    key_id: str | None = None
    secret: str | None = None
    replayed: bool = False
    """An idempotent retry of a create: nothing new, and the secret cannot be shown again."""
    warnings: list[str] = field(default_factory=list)


def request_hash(body: Mapping[str, Any]) -> str:
    """A create's `request_hash`: `sha256:` of the canonical JSON of its request body (the
    validated body with defaults filled in, keys sorted, no spaces), so a retry is
    recognised however its client formats it; the HTTP API and the CLI both use it."""
    canonical = orjson.dumps(dict(body), option=orjson.OPT_SORT_KEYS)
    return "sha256:" + hashlib.sha256(canonical).hexdigest()


def roll_hash(key_id: str, overlap: str) -> str:
    """A roll's `request_hash` (the HTTP API and the CLI both use it)."""
    return request_hash({"overlap": overlap, "roll": key_id})


def create_hash(
    name: str,
    key_type: KeyType,
    access: KeyAccess,
    allowed_cidrs: tuple[str, ...] = (),
    expires: str | None = None,
) -> str:
    """A create's `request_hash` from its fields: the body `POST /api-keys` gets, with
    `allowed_cidrs` and the expiry (`expires_at` or `expires_in` as written) only when
    given, so a create without them hashes as it did before they existed."""
    body: dict[str, Any] = {"access": access.value, "name": name, "type": key_type.value}
    if allowed_cidrs:
        body["allowed_cidrs"] = list(allowed_cidrs)
    if expires is not None:
        body["expires"] = expires
    return request_hash(body)


def overlap_of(text: str) -> timedelta:
    """The overlap `text` names ("0", "15m", "1h", "6h", "24h", "7d"), else a refusal
    listing the allowed values."""
    overlap = OVERLAPS.get(text.strip())
    if overlap is None:
        allowed = ", ".join(OVERLAPS)
        raise CommandRefused(
            "invalid_overlap", f"overlap {text!r} is not one of {allowed}", 422, allowed=allowed
        )
    return overlap


def duration_of(text: str, what: str = "expires_in") -> timedelta:
    """`30d`, `12h`, `90m` as a duration, else a refusal saying what is expected."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise CommandRefused(
            "invalid_duration",
            f"{what} {text!r} is not a duration; give a number and a unit, m, h or d "
            "(e.g. 90m, 12h, 30d)",
            422,
        )
    duration = int(match.group(1)) * _UNITS[match.group(2)]
    if duration > MAX_EXPIRES_IN:
        raise CommandRefused(
            "invalid_duration", f"{what} {text!r} is longer than 3650 days (10 years)", 422
        )
    return duration


def normalised_cidrs(entries: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The allow-list as stored: each entry by `ip_network(strict=False)` (a bare address
    is a /32 or /128 network; host bits cleared), duplicates dropped, in the given order;
    else a refusal naming the first bad entry."""
    out: dict[str, None] = {}
    for position, entry in enumerate(entries):
        try:
            if not isinstance(entry, str) or entry != entry.strip() or "%" in entry:
                raise ValueError(entry)
            out[str(ip_network(entry, strict=False))] = None
        except ValueError:
            raise CommandRefused(
                "invalid_cidr",
                f"allowed_cidrs[{position}] = {entry!r} is not an IPv4 or IPv6 address or "
                "network; write e.g. 203.0.113.7, 203.0.113.0/24 or 2001:db8::/32",
                422,
                entry=str(entry),
            ) from None
    if len(out) > MAX_ALLOWED_CIDRS:
        raise CommandRefused(
            "too_many_cidrs",
            f"the allow-list has {len(out)} networks; at most {MAX_ALLOWED_CIDRS} are allowed "
            "(merge neighbouring ones into wider prefixes)",
            422,
        )
    return tuple(out)


def name_problem(name: str) -> str | None:
    """Why `name` is not a valid key name (None: it is)."""
    if not name.strip():
        return "the name is empty; give the key a name that says what it is for"
    if name != name.strip():
        return "the name starts or ends with whitespace; remove it"
    if len(name) > MAX_NAME_LENGTH:
        return f"the name is {len(name)} characters long; at most {MAX_NAME_LENGTH} are allowed"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "the name contains a control character (tab, newline, …); remove it"
    return None


def name_warnings(name: str) -> list[str]:
    return [GENERIC_NAME_WARNING.format(name=name)] if _GENERIC_NAME.fullmatch(name) else []


def _refuse(refusal: Refusal, ledger: AccountLedger | None, **facts: Any) -> CommandRefused:
    account = ledger.account_id if ledger is not None else facts.get("account_id", "")
    key_id = facts.get("key_id", "")
    if refusal is Refusal.PLAN_LIMIT_REACHED and ledger is not None:
        kind = facts["key_type"]
        limit = ledger.limit(kind)
        return CommandRefused(
            "plan_limit_reached",
            f"the {ledger.plan.value} plan allows {limit} active {kind} keys and {account} has "
            f"{ledger.count(kind)}; revoke one or change the plan (PUT /account/plan, or "
            "`keypulse accounts plan`)",
            409,
            plan=ledger.plan.value,
            key_type=kind,
            limit=limit,
            active=ledger.count(kind),
        )
    messages: dict[Refusal, tuple[int, str]] = {
        Refusal.ACCOUNT_NOT_FOUND: (404, f"no account {account}; create it first"),
        Refusal.ACCOUNT_EXISTS: (409, f"account {account} already exists"),
        Refusal.KEY_NOT_FOUND: (404, f"no key {key_id} in this account"),
        Refusal.KEY_DELETED: (404, f"key {key_id} was deleted"),
        Refusal.KEY_NOT_REVOKED: (
            409,
            f"key {key_id} is active; revoke it first (POST /api-keys/{key_id}/revoke, or "
            "`keypulse keys revoke`), then delete it",
        ),
        Refusal.ADMIN_LIMIT_REACHED: (
            409,
            f"{account} already has the most active admin keys allowed; revoke one first",
        ),
        Refusal.KEY_REVOKED: (
            409,
            f"key {key_id} is revoked and cannot be rolled; create a new key instead "
            "(POST /api-keys, or `keypulse keys create`)",
        ),
        Refusal.KEY_EXPIRED: (
            409,
            f"key {key_id} has expired and cannot be rolled; create a new key instead "
            "(POST /api-keys, or `keypulse keys create`)",
        ),
        Refusal.KEY_ALREADY_REPLACED: (
            409,
            f"key {key_id} was already rolled (replaced by {facts.get('replaced_by')}); "
            "roll that key instead",
        ),
    }
    status, detail = messages.get(refusal, (409, refusal.value))
    return CommandRefused(refusal.value, detail, status, key_id=key_id or None)


def _envelope(ledger: AccountLedger | None, ctx: Context) -> dict[str, Any]:
    return {
        "event_id": ctx.new_event_id(),
        "occurred_at": ctx.now,
        "seq": 1 if ledger is None else ledger.seq + 1,
        "prev": None if ledger is None else ledger.head,
        "actor": ctx.actor,
        "source_ip": ctx.source_ip,
    }


def _key(ledger: AccountLedger, key_id: str) -> KeyRecord:
    key = ledger.keys.get(key_id)
    if key is None or key.status is KeyStatus.DELETED:
        raise _refuse(Refusal.KEY_NOT_FOUND, ledger, key_id=key_id)
    return key


def _replayed_create(
    ledger: AccountLedger, cmd: CreateKey | RollKey, now: datetime
) -> Decision | None:
    if cmd.idempotency_key is None:
        return None
    seen = ledger.idempotency.get(cmd.idempotency_key)
    if seen is None or now - seen.at > IDEMPOTENCY_TTL:
        return None
    if seen.request_hash != cmd.request_hash:
        raise CommandRefused(
            "idempotency_key_reused",
            "this Idempotency-Key was used for a different request in the last 24 hours; "
            "use a new key for a new request",
            422,
        )
    return Decision(account_id=ledger.account_id, key_id=seen.key_id, replayed=True)


def _expiry(cmd: CreateKey, now: datetime) -> datetime | None:
    if cmd.expires_at is not None and cmd.expires_in is not None:
        raise CommandRefused("invalid_expiry", "give expires_at or expires_in, not both", 422)
    if cmd.expires_in is not None:
        if cmd.expires_in <= timedelta(0):
            raise CommandRefused("invalid_expiry", "expires_in must be positive", 422)
        return now + cmd.expires_in
    if cmd.expires_at is not None:
        if cmd.expires_at.utcoffset() is None:
            raise CommandRefused(
                "invalid_expiry", "expires_at needs a time zone, e.g. 2027-01-01T00:00:00Z", 422
            )
        if cmd.expires_at <= now:
            raise CommandRefused(
                "invalid_expiry",
                f"expires_at {cmd.expires_at.isoformat()} is not in the future",
                422,
            )
        if cmd.expires_at - now > MAX_EXPIRES_IN:
            raise CommandRefused(
                "invalid_expiry", "expires_at is more than 3650 days (10 years) away", 422
            )
    return cmd.expires_at


def _create_key(ledger: AccountLedger, cmd: CreateKey, ctx: Context) -> Decision:
    problem = name_problem(cmd.name)
    if problem is not None:
        raise CommandRefused("invalid_name", problem, 422)
    allowed_cidrs = normalised_cidrs(cmd.allowed_cidrs)
    expires_at = _expiry(cmd, ctx.now)
    replayed = _replayed_create(ledger, cmd, ctx.now)
    if replayed is not None:
        return replayed
    secret = ctx.new_secret(cmd.key_type.value)
    event = KeyCreated(
        **_envelope(ledger, ctx),
        account_id=ledger.account_id,
        key_id=ctx.new_key_id(),
        name=cmd.name,
        key_type=cmd.key_type,
        access=cmd.access,
        secret_hash=hash_secret(secret),
        hint=hint(secret),
        idempotency_key=cmd.idempotency_key,
        request_hash=cmd.request_hash,
        allowed_cidrs=allowed_cidrs,
        expires_at=expires_at,
    )
    limit_class = "admin" if cmd.access is KeyAccess.ADMIN else cmd.key_type.value
    _allowed(ledger, event, key_type=limit_class)
    return Decision(
        [event], ledger.account_id, event.key_id, secret, warnings=name_warnings(cmd.name)
    )


def _roll_key(ledger: AccountLedger, cmd: RollKey, ctx: Context) -> Decision:
    if cmd.overlap not in OVERLAPS.values():
        raise CommandRefused(
            "invalid_overlap",
            f"an overlap of {cmd.overlap} is not one of {', '.join(OVERLAPS)}",
            422,
            allowed=", ".join(OVERLAPS),
        )
    old = _key(ledger, cmd.key_id)
    replayed = _replayed_create(ledger, cmd, ctx.now)
    if replayed is not None:
        return replayed
    secret = ctx.new_secret(old.key_type.value)
    old_expires_at = ctx.now + cmd.overlap
    if old.expires_at is not None:
        old_expires_at = min(old.expires_at, old_expires_at)
    event = KeyRolled(
        **_envelope(ledger, ctx),
        account_id=ledger.account_id,
        key_id=old.key_id,
        new_key_id=ctx.new_key_id(),
        secret_hash=hash_secret(secret),
        hint=hint(secret),
        old_expires_at=old_expires_at,
        idempotency_key=cmd.idempotency_key,
        request_hash=cmd.request_hash,
    )
    _allowed(ledger, event, key_id=old.key_id, replaced_by=old.replaced_by)
    return Decision([event], ledger.account_id, event.new_key_id, secret)


def _allowed(ledger: AccountLedger, event: KeyEventModel, **facts: Any) -> None:
    """Raise why `event` would not be applied to `ledger`."""
    refusal = check(ledger, event)
    if refusal is not None:
        raise _refuse(refusal, ledger, **facts)


def _decide_key(ledger: AccountLedger, cmd: Command, ctx: Context) -> Decision:
    if isinstance(cmd, CreateKey):
        return _create_key(ledger, cmd, ctx)
    if isinstance(cmd, RollKey):
        return _roll_key(ledger, cmd, ctx)
    if isinstance(cmd, ChangePlan):
        if cmd.plan is ledger.plan:
            return Decision(account_id=ledger.account_id)
        plan_event = PlanChanged(
            **_envelope(ledger, ctx),
            account_id=ledger.account_id,
            plan=cmd.plan,
            previous=ledger.plan,
        )
        _allowed(ledger, plan_event)
        return Decision([plan_event], ledger.account_id)
    assert not isinstance(cmd, CreateAccount)
    return _change_key(ledger, cmd, ctx)


def _change_event(
    ledger: AccountLedger,
    key: KeyRecord,
    cmd: RenameKey | RevokeKey | DeleteKey | SetAllowList,
    ctx: Context,
    done: Decision,
) -> KeyEventModel | None:
    """The event `cmd` makes on `key` (None: it changes nothing)."""
    envelope = {"account_id": ledger.account_id, "key_id": key.key_id}
    if isinstance(cmd, RenameKey):
        problem = name_problem(cmd.name)
        if problem is not None:
            raise CommandRefused("invalid_name", problem, 422)
        done.warnings = name_warnings(cmd.name)
        if cmd.name == key.name:
            return None
        return KeyRenamed(**_envelope(ledger, ctx), **envelope, name=cmd.name)
    if isinstance(cmd, SetAllowList):
        allowed_cidrs = normalised_cidrs(cmd.allowed_cidrs)
        if allowed_cidrs == key.allowed_cidrs:
            return None
        return KeyAllowListChanged(
            **_envelope(ledger, ctx), **envelope, allowed_cidrs=allowed_cidrs
        )
    if isinstance(cmd, RevokeKey):
        if key.status is KeyStatus.REVOKED:
            return None  # revocation is permanent; a repeat changes nothing
        return KeyRevoked(**_envelope(ledger, ctx), **envelope, reason=cmd.reason)
    return KeyDeleted(**_envelope(ledger, ctx), **envelope)


def _change_key(
    ledger: AccountLedger, cmd: RenameKey | RevokeKey | DeleteKey | SetAllowList, ctx: Context
) -> Decision:
    key = _key(ledger, cmd.key_id)
    done = Decision(account_id=ledger.account_id, key_id=key.key_id)
    event = _change_event(ledger, key, cmd, ctx, done)
    if event is None:
        return done
    _allowed(ledger, event, key_id=key.key_id)
    done.events = [event]
    return done


def decide(ledger: AccountLedger | None, command: Command, ctx: Context) -> Decision:
    """The events `command` makes on `ledger` (which it does not change)."""
    if isinstance(command, CreateAccount):
        if ledger is not None:
            if ledger.plan is command.plan:
                return Decision(account_id=ledger.account_id)  # a retried create
            raise _refuse(Refusal.ACCOUNT_EXISTS, ledger)
        event = AccountCreated(
            **_envelope(None, ctx), account_id=command.account_id, plan=command.plan
        )
        return Decision([event], command.account_id)
    if ledger is None:
        raise _refuse(Refusal.ACCOUNT_NOT_FOUND, None, account_id=command.account_id)
    return _decide_key(ledger, command, ctx)
