"""The secrets of notification channels: which fields they are, and sealing, opening,
rewrapping and masking them (`alerting.sealing` does the cryptography).

Contracts:

- Secret fields: a webhook's `secret`, a Slack channel's `webhook_url` and `bot_token`
  (`SECRET_FIELDS`). An email channel has none (SMTP credentials are settings).
- A field is sealed for the context `<account_id>/<rule_id>/<type>.<field>`, so a sealed
  value opens only in its own rule and field; its hint is `mask(plaintext)`.
- Rules carry sealed values on the rules topic, in `alert_rules`, in notifications and in
  `deliveries`; the notifier opens a channel just before sending (`open_channel`).
- `mask` never returns more of a secret than its type prefix and last 4 characters, and of
  a Slack incoming-webhook URL only the scheme and host.
- `identity_channel` replaces each sealed value by its rewrap-stable part, so a channel's
  id (`alerting.fingerprint.channel_id`) does not change when the master key rotates.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from alerting.sealing import (
    Keyring,
    Random,
    SealingError,
    open_sealed,
    rewrap,
    seal,
    sealed_hint,
    sealed_kid,
    stable_part,
)
from schemas.alerts import Channel, UrlError, is_sealed, parse_http_url

SECRET_FIELDS: dict[str, tuple[str, ...]] = {
    "webhook": ("secret",),
    "slack": ("webhook_url", "bot_token"),
}


def secret_context(account_id: str, rule_id: str, channel_type: str, field: str) -> str:
    return f"{account_id}/{rule_id}/{channel_type}.{field}"


def mask(field: str, value: str) -> str:
    """The display form of a secret (its stored hint when sealed): ``whsec_…abcd``,
    ``xoxb-…abcd``, ``https://hooks.slack.com/…``."""
    if is_sealed(value):
        return sealed_hint(value) or "…"
    if field == "webhook_url":
        try:
            url = parse_http_url(value)
        except UrlError:
            return "…"
        return f"{url.scheme}://{url.host}/…"
    prefix = value[:6] if value.startswith("whsec_") else value[:5]
    return f"{prefix}…{value[-4:]}" if len(value) >= len(prefix) + 16 else f"{prefix}…"


def secret_values(channel: Channel) -> Iterator[tuple[str, str]]:
    """(field, value) of each secret the channel holds."""
    for field in SECRET_FIELDS.get(channel.type, ()):
        value = getattr(channel, field)
        if value is not None:
            yield field, value


def needs_sealing(channels: Sequence[Channel]) -> bool:
    """True when a channel holds a secret in plaintext."""
    return any(not is_sealed(v) for c in channels for _, v in secret_values(c))


def is_opened(channel: Channel) -> bool:
    """True when nothing of the channel is sealed."""
    return not any(is_sealed(v) for _, v in secret_values(channel))


def kids_of(channels: Sequence[Channel]) -> set[str]:
    """The master keys the channels' sealed values are wrapped with."""
    return {sealed_kid(v) for c in channels for _, v in secret_values(c) if is_sealed(v)}


@dataclass
class SealCounts:
    sealed: int = 0
    """Plaintext secrets sealed."""
    rewrapped: int = 0
    """Sealed secrets moved to the current master key."""
    current: int = 0
    """Sealed secrets already under the current master key (checked to open)."""

    def add(self, other: SealCounts) -> None:
        self.sealed += other.sealed
        self.rewrapped += other.rewrapped
        self.current += other.current


def seal_channels(
    channels: Sequence[Channel],
    account_id: str,
    rule_id: str,
    keyring: Keyring,
    *,
    rewrap_old: bool = False,
    random: Random = os.urandom,
) -> tuple[list[Channel], SealCounts]:
    """The channels with every plaintext secret sealed; each sealed one is checked to open
    for this rule (with `rewrap_old`, moved to the current master key). Raises
    `SealingError` naming the field (`channels.<i>.<field>: …`)."""
    counts = SealCounts()
    out: list[Channel] = []
    for i, chan in enumerate(channels):
        update: dict[str, str] = {}
        for field, value in secret_values(chan):
            context = secret_context(account_id, rule_id, chan.type, field)
            try:
                if not is_sealed(value):
                    update[field] = seal(keyring, value, context, mask(field, value), random)
                    counts.sealed += 1
                elif rewrap_old and sealed_kid(value) != keyring.current_kid:
                    update[field] = rewrap(keyring, value, context, random)
                    counts.rewrapped += 1
                else:
                    open_sealed(keyring, value, context)
                    counts.current += sealed_kid(value) == keyring.current_kid
            except SealingError as exc:
                raise SealingError(f"channels.{i}.{field}: {exc}") from None
        out.append(chan.model_copy(update=update) if update else chan)
    return out, counts


def open_channel(channel: Channel, account_id: str, rule_id: str, keyring: Keyring) -> Channel:
    """The channel with its sealed secrets opened (for sending only; never stored)."""
    update = {
        field: open_sealed(keyring, value, secret_context(account_id, rule_id, channel.type, field))
        for field, value in secret_values(channel)
        if is_sealed(value)
    }
    return channel.model_copy(update=update) if update else channel


def identity_channel(channel: Channel) -> Channel:
    """The channel with each sealed value replaced by its rewrap-stable part."""
    update = {
        field: "sealed:" + stable_part(value)
        for field, value in secret_values(channel)
        if is_sealed(value)
    }
    return channel.model_copy(update=update) if update else channel
