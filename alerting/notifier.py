"""The delivery plug-in point: `Notifier.send(notification, channel) -> SendResult`.

Contract for every implementation: one attempt per call, no retries and no sleeping
inside; every delivery outcome is returned as a `SendResult` (network failures included),
exceptions are reserved for programming errors. Retrying is `alerting.retry`'s job.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from alerting.channel_secrets import is_opened, open_channel
from alerting.sealing import Keyring, SealingError
from schemas.alerts import Channel, DeliveryOutcome, Notification

Outcome = DeliveryOutcome


@dataclass(frozen=True, slots=True)
class SendResult:
    """The outcome of one attempt.

    `retry_after_s` is the receiver's Retry-After (only for retryable results); `detail`
    is a short, loggable description (status code, server reply, exception).
    """

    outcome: DeliveryOutcome
    detail: str = ""
    retry_after_s: float | None = None

    @classmethod
    def delivered(cls, detail: str = "") -> SendResult:
        return cls(DeliveryOutcome.DELIVERED, detail)

    @classmethod
    def retryable(cls, detail: str, retry_after_s: float | None = None) -> SendResult:
        return cls(DeliveryOutcome.RETRYABLE, detail, retry_after_s)

    @classmethod
    def permanent(cls, detail: str) -> SendResult:
        return cls(DeliveryOutcome.PERMANENT, detail)

    @classmethod
    def disable_endpoint(cls, detail: str) -> SendResult:
        return cls(DeliveryOutcome.DISABLE_ENDPOINT, detail)


class Notifier(Protocol):
    """Delivers one notification to one channel, once."""

    async def send(self, notification: Notification, channel: Channel) -> SendResult: ...


class ChannelRouter:
    """A `Notifier` that hands each channel to the notifier registered for its type.

    A channel type without a notifier is a permanent failure.
    """

    def __init__(self, notifiers: Mapping[str, Notifier]) -> None:
        self._notifiers = dict(notifiers)

    async def send(self, notification: Notification, channel: Channel) -> SendResult:
        notifier = self._notifiers.get(channel.type)
        if notifier is None:
            return SendResult.permanent(f"no notifier configured for {channel.type} channels")
        return await notifier.send(notification, channel)


NO_MASTER_KEY = (
    "the channel's secrets are sealed and this worker has no master key: set "
    "KEYPULSE_SECRETS_MASTER_KEY_FILE (or KEYPULSE_SECRETS_MASTER_KEY) to the keyring the "
    "rules were sealed with"
)


class OpeningNotifier:
    """A `Notifier` that opens a channel's sealed secrets (`alerting.channel_secrets`)
    just before `inner` sends, and forgets them after. `keyring` gives the current keyring
    (None: none configured); a value that does not open is a permanent failure whose
    detail says why (unknown key id, altered, sealed for another rule)."""

    def __init__(self, inner: Notifier, keyring: Callable[[], Keyring | None]) -> None:
        self._inner = inner
        self._keyring = keyring

    async def send(self, notification: Notification, channel: Channel) -> SendResult:
        if is_opened(channel):
            return await self._inner.send(notification, channel)
        keyring = self._keyring()
        if keyring is None:
            return SendResult.permanent(NO_MASTER_KEY)
        try:
            opened = open_channel(
                channel, notification.account_id, notification.rule.rule_id, keyring
            )
        except SealingError as exc:
            return SendResult.permanent(f"cannot open the channel's secret: {exc}")
        return await self._inner.send(notification, opened)
