"""The API Keys page's forms (pure): their fields as key-service commands, their choices,
and what a refusal says.

Each form becomes the command the JSON API sends for the same change
(`infra.http.routes.key_commands`), with the same request hashes for an idempotent
create or roll: every create and roll dialog carries a fresh `idempotency_key`, so a
double submit creates one key (the repeat is told the secret was shown once already).
Refusals (`CommandRefused`, `Unavailable`) become one sentence for the dialog; a plan
limit is said as the page says it (`key_list_view.limit_reason`).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from infra.console.key_list_view import limit_reason
from schemas.keys import IDEMPOTENCY_KEY_PATTERN, KeyAccess, KeyType, RevokeReason
from schemas.plans import ADMIN_KEY_LIMIT
from streams.keyservice.commands import (
    OVERLAPS,
    CommandRefused,
    CreateKey,
    RevokeKey,
    RollKey,
    create_hash,
    overlap_of,
    roll_hash,
)
from streams.keyservice.service import Unavailable

__all__ = [
    "ACCESS_CHOICES",
    "DEFAULT_OVERLAP",
    "OVERLAP_CHOICES",
    "REPLAYED",
    "REVOKE_REASONS",
    "CreateForm",
    "create_command",
    "new_form_token",
    "refusal_text",
    "revoke_command",
    "roll_command",
    "unavailable_text",
]

ACCESS_CHOICES: dict[str, str] = {
    KeyAccess.FULL.value: "Full: the product API",
    KeyAccess.READ_ONLY.value: "Read-only: reads keys, usage and alerts",
    KeyAccess.ADMIN.value: "Admin: manages keys and alerts",
}
OVERLAP_LABELS = {
    "0": "None: the old key stops working now",
    "15m": "15 minutes",
    "1h": "1 hour",
    "6h": "6 hours",
    "24h": "24 hours",
    "7d": "7 days",
}
OVERLAP_CHOICES: dict[str, str] = {value: OVERLAP_LABELS.get(value, value) for value in OVERLAPS}
"""The roll dialog's choices: every value the key service takes, in its order."""
DEFAULT_OVERLAP = "1h"
REVOKE_REASONS: dict[str, str] = {
    RevokeReason.USER_REQUEST.value: "No longer needed",
    RevokeReason.COMPROMISED.value: "Compromised or leaked",
    RevokeReason.ROTATED.value: "Replaced by another key",
    RevokeReason.OTHER.value: "Other",
}
REPLAYED = (
    "This form was already sent and created the key then; its secret was shown once and "
    "cannot be shown again. If it was lost, revoke the key and create a new one."
)
_TOKEN = re.compile(IDEMPOTENCY_KEY_PATTERN)


def new_form_token() -> str:
    """A fresh idempotency key for one create or roll dialog."""
    return "console-" + secrets.token_urlsafe(18)


def _token(value: str) -> str | None:
    return value if value and _TOKEN.fullmatch(value) else None


def _refused(code: str, detail: str) -> CommandRefused:
    return CommandRefused(code, detail, 422)


def create_command(
    account_id: str, name: str, key_type: str, access: str, token: str = ""
) -> CreateKey:
    """The create form as a command (`CommandRefused` 422 for a type or access the form
    does not offer)."""
    if key_type not in {t.value for t in KeyType}:
        raise _refused("invalid_type", "choose live or test")
    if access not in ACCESS_CHOICES:
        raise _refused("invalid_access", "choose full, read-only or admin access")
    kind, level = KeyType(key_type), KeyAccess(access)
    idempotency_key = _token(token)
    digest = create_hash(name, kind, level) if idempotency_key else None
    return CreateKey(
        account_id, name, kind, level, idempotency_key=idempotency_key, request_hash=digest
    )


def roll_command(account_id: str, key_id: str, overlap: str, token: str = "") -> RollKey:
    """The roll form as a command (`CommandRefused` 422 for an overlap not offered)."""
    chosen = overlap.strip()
    idempotency_key = _token(token)
    digest = roll_hash(key_id, chosen) if idempotency_key else None
    return RollKey(
        account_id, key_id, overlap_of(chosen), idempotency_key=idempotency_key, request_hash=digest
    )


def revoke_command(account_id: str, key_id: str, reason: str) -> RevokeKey:
    if reason not in REVOKE_REASONS:
        raise _refused("invalid_reason", "choose why the key is revoked")
    return RevokeKey(account_id, key_id, RevokeReason(reason))


def _sentence(text: str) -> str:
    text = text.strip()
    if not text:
        return "The change was refused."
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def refusal_text(exc: CommandRefused) -> str:
    """What the dialog says when the key service refuses (never the API's paths)."""
    extra = exc.extra
    if exc.code == "plan_limit_reached":
        plan = str(extra.get("plan", "")).capitalize() or "The plan"
        return _sentence(limit_reason(plan, str(extra.get("key_type")), int(extra["limit"])))
    if exc.code == "admin_limit_reached":
        return _sentence(limit_reason("", "admin", ADMIN_KEY_LIMIT))
    if exc.code == "key_not_revoked":
        return "This key is active: revoke it first, then delete it."
    if exc.code in ("key_revoked", "key_expired"):
        return "This key can no longer be rolled: create a new key instead."
    return _sentence(exc.detail)


def unavailable_text(exc: Unavailable) -> str:
    del exc
    return (
        "The key service did not answer in time; the change may not have been made. "
        "Reload the page to see, and try again if needed."
    )


@dataclass(frozen=True)
class CreateForm:
    """The create dialog's fields, as typed (shown again with a refusal)."""

    name: str = ""
    key_type: str = ""
    access: str = KeyAccess.FULL.value
