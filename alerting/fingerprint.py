"""Stable identifiers: instance fingerprints, idempotency keys and channel ids.

Contracts: the same inputs always give the same string, across processes and versions;
outputs use only ``[A-Za-z0-9._-]`` so they are valid as a webhook-id, as the local part
of an email Message-ID and as a Kafka key.
"""

from __future__ import annotations

import hashlib

from schemas.alerts import Channel, EmailChannel, NotificationKind, SlackChannel, WebhookChannel


def fingerprint(rule_id: str, key_id: str) -> str:
    """Identify the rule x key instance: 32 hex characters of SHA-256."""
    digest = hashlib.sha256(f"{rule_id}\x1f{key_id}".encode()).hexdigest()
    return digest[:32]


def idempotency_key(fp: str, episode: int, kind: NotificationKind, repeat_n: int = 0) -> str:
    """Key per (fingerprint, episode, firing | resolved | repeat n).

    `repeat_n` is used only for repeats (1, 2, …); firing and resolved ignore it.
    """
    if episode < 1:
        raise ValueError("episode numbers start at 1")
    if kind is NotificationKind.REPEAT:
        if repeat_n < 1:
            raise ValueError("repeat numbers start at 1")
        return f"{fp}.{episode}.repeat.{repeat_n}"
    return f"{fp}.{episode}.{kind.value}"


def firing_key(fp: str, episode: int) -> str:
    """The idempotency key of the episode's first (firing) notification."""
    return idempotency_key(fp, episode, NotificationKind.FIRING)


def channel_id(channel: Channel) -> str:
    """Identify a delivery endpoint (e.g. to disable a webhook URL after a 410)."""
    if isinstance(channel, WebhookChannel):
        target = channel.url
    elif isinstance(channel, SlackChannel):
        target = channel.webhook_url or f"{channel.bot_token}\x1f{channel.channel}"
    else:
        assert isinstance(channel, EmailChannel)
        target = "\x1f".join(channel.to)
    digest = hashlib.sha256(f"{channel.type}\x1f{target}".encode()).hexdigest()
    return f"{channel.type}_{digest[:24]}"
