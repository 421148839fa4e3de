"""What the `rules` and `deliveries` commands and routes do, without typer or FastAPI:
build and check rules, publish rule events, replays and test notifications to Kafka
(confirmed).

`Publisher` keeps one producer for a long-lived process (the HTTP API); the module-level
`publish*` functions open one for a single call (the CLI).

Errors a user can fix are `AlertAdminError`s whose message is one line naming the field.
"""

from __future__ import annotations

import asyncio
import base64
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ValidationError

from alerting.channel_secrets import (
    SECRET_FIELDS,
    SealCounts,
    mask,
    seal_channels,
    secret_values,
)
from alerting.notification_tests import build_test_notification
from alerting.sealing import SealingError
from alerting.ssrf import UnsafeUrlError, check_url
from infra.master_keys import KeyringSource, MasterKeyError
from infra.settings import Settings
from schemas.alerts import (
    AlertRule,
    AlertRuleCreated,
    AlertRuleDeleted,
    AlertRuleUpdated,
    Notification,
    SlackChannel,
    UrlError,
    WebhookChannel,
    is_sealed,
    parse_http_url,
)
from schemas.codec import REPLAY_HEADER, encode
from schemas.topics import TopicNames
from streams.client.kafka_client import build_producer, close_producer


class AlertAdminError(Exception):
    """A rule or request the user must fix; the message is one line."""


class SecretsUnavailable(AlertAdminError):
    """Channel secrets cannot be sealed here: no usable master key (the operator's to fix)."""


def describe_validation_error(exc: ValidationError, prefix: str = "") -> str:
    """`field.path: message; ...` on one line (pydantic's "Value error, " prefix removed)."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{prefix}{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


def new_webhook_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode("ascii")


def new_rule_id() -> str:
    return "rule_" + os.urandom(6).hex()


def new_test_nonce() -> str:
    """What makes each test notification of a rule a delivery of its own."""
    return os.urandom(6).hex()


def build_rule(data: Mapping[str, Any]) -> AlertRule:
    """Validate a rule from plain data (None values mean "not given")."""
    clean = {k: v for k, v in data.items() if v is not None}
    try:
        return AlertRule.model_validate(clean)
    except ValidationError as exc:
        raise AlertAdminError(f"invalid rule: {describe_validation_error(exc)}") from None


def channels_from_options(
    emails: Sequence[str],
    slack_webhook: str | None,
    slack_token: str | None,
    slack_channel: str | None,
    webhook_url: str | None,
    webhook_secret: str | None,
) -> list[dict[str, Any]]:
    """Channel dicts from CLI options (validated later with the rule)."""
    channels: list[dict[str, Any]] = []
    if emails:
        channels.append({"type": "email", "to": list(emails)})
    if slack_webhook or slack_token or slack_channel:
        channels.append(
            {
                "type": "slack",
                "webhook_url": slack_webhook,
                "bot_token": slack_token,
                "channel": slack_channel,
            }
        )
    if webhook_url or webhook_secret:
        channels.append({"type": "webhook", "url": webhook_url, "secret": webhook_secret})
    return channels


def check_rule_urls(rule: AlertRule, settings: Settings) -> None:
    """Webhook URLs must pass the SSRF guard now (resolved); Slack webhooks an allowed host
    (a sealed Slack webhook URL was checked when it was sealed)."""
    cfg = settings.alerting
    allowed = {h.lower() for h in cfg.slack_allowed_webhook_hosts}
    for i, chan in enumerate(rule.channels):
        if isinstance(chan, WebhookChannel):
            try:
                asyncio.run(check_url(chan.url, allow_loopback=cfg.allow_loopback_webhooks))
            except UnsafeUrlError as exc:
                raise AlertAdminError(f"invalid rule: channels.{i}.url: {exc}") from None
        elif (
            isinstance(chan, SlackChannel)
            and chan.webhook_url is not None
            and not is_sealed(chan.webhook_url)  # checked before it was sealed
        ):
            try:
                host = parse_http_url(chan.webhook_url).host
            except UrlError as exc:
                raise AlertAdminError(f"invalid rule: channels.{i}.webhook_url: {exc}") from None
            if host not in allowed:
                raise AlertAdminError(
                    f"invalid rule: channels.{i}.webhook_url: host {host!r} is not an allowed "
                    f"Slack webhook host ({', '.join(sorted(allowed))})"
                )


@dataclass(frozen=True)
class Published:
    topic: str
    partition: int
    offset: int


Record = tuple[bytes, bytes, list[tuple[str, bytes]]]
"""One Kafka record to send: (key, value, headers)."""


class Publisher:
    """One Kafka producer for rule events and replays, built on first use and then reused.

    Thread-safe (kafka-python's producer is); every send waits until the broker confirmed
    each record. A producer that cannot be built raises `KafkaUnreachable` and the next
    send tries again. `close()` releases the producer; a later send builds a new one.
    """

    def __init__(self, settings: Settings, timeout_s: float = 15.0) -> None:
        self._settings = settings
        self._timeout_s = timeout_s
        self._lock = threading.Lock()
        self._producer: Any = None
        self.producers_built = 0
        self.topics = TopicNames.with_prefix(settings.kafka.topic_prefix)
        self.keyring = KeyringSource(settings)

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @property
    def connected(self) -> bool:
        """True while a producer is open (between the first send and `close()`)."""
        return self._producer is not None

    def _producer_or_build(self) -> Any:
        from kafka.errors import KafkaError

        from infra.kafka.admin import KafkaUnreachable

        with self._lock:
            if self._producer is None:
                kafka = self._settings.kafka
                try:
                    self._producer = build_producer(
                        kafka.bootstrap_servers,
                        f"{kafka.client_id}-admin",
                        None,
                        {"bootstrap_timeout_ms": 5_000},
                    )
                except (KafkaError, OSError) as exc:
                    raise KafkaUnreachable(
                        f"no Kafka broker reachable at {kafka.bootstrap_servers}"
                    ) from exc
                self.producers_built += 1
            return self._producer

    def send(self, topic: str, records: Sequence[Record]) -> list[Published]:
        """Send the records and wait until the broker confirmed each."""
        from kafka.errors import KafkaError

        from infra.kafka.admin import KafkaUnreachable

        producer = self._producer_or_build()
        try:
            futures = [producer.send(topic, value=v, key=k, headers=h) for k, v, h in records]
            out = []
            for future in futures:
                meta = future.get(timeout=self._timeout_s)
                out.append(Published(meta.topic, meta.partition, meta.offset))
            return out
        except KafkaError as exc:
            raise KafkaUnreachable(f"publishing to {topic} failed: {exc!r}") from exc

    def sealed(self, rule: AlertRule, rewrap_old: bool = False) -> AlertRule:
        """`rule` with its channel secrets sealed (`alerting.channel_secrets`): plaintext
        ones sealed under the current master key, sealed ones checked to open for this rule
        (`rewrap_old`: moved to the current key). `SecretsUnavailable` without a usable
        master key; `AlertAdminError` for a sealed value that does not open here."""
        return self.seal_counts(rule, rewrap_old)[0]

    def seal_counts(
        self, rule: AlertRule, rewrap_old: bool = False
    ) -> tuple[AlertRule, SealCounts]:
        """`sealed`, with what it did."""
        if not any(True for c in rule.channels for _ in secret_values(c)):
            return rule, SealCounts()
        try:
            keyring = self.keyring.require()
        except MasterKeyError as exc:
            raise SecretsUnavailable(f"cannot seal the rule's channel secrets: {exc}") from None
        try:
            channels, counts = seal_channels(
                rule.channels, rule.account_id, rule.rule_id, keyring, rewrap_old=rewrap_old
            )
        except SealingError as exc:
            raise AlertAdminError(f"invalid rule: {exc}") from None
        return rule.model_copy(update={"channels": channels}), counts

    def rule(self, rule: AlertRule, replace: bool = False) -> Published:
        """Publish a rule's creation (or, with `replace`, its new definition), its channel
        secrets sealed (`sealed`): no plaintext secret is ever published."""
        rule = self.sealed(rule)
        event: BaseModel = AlertRuleUpdated(rule=rule) if replace else AlertRuleCreated(rule=rule)
        [done] = self.send(self.topics.alert_rules, [(rule.rule_id.encode(), encode(event), [])])
        return done

    def rule_deletion(self, rule_id: str, account_id: str) -> Published:
        try:
            event = AlertRuleDeleted(rule_id=rule_id, account_id=account_id)
        except ValidationError as exc:
            raise AlertAdminError(describe_validation_error(exc)) from None
        [done] = self.send(self.topics.alert_rules, [(rule_id.encode(), encode(event), [])])
        return done

    def replay(self, notification: Notification, delivery_id: str) -> Published:
        """Put the original notification back on the topic, marked for one delivery."""
        headers = [(REPLAY_HEADER, delivery_id.encode())]
        record = (notification.fingerprint.encode(), encode(notification), headers)
        [done] = self.send(self.topics.notifications, [record])
        return done

    def notification(self, notification: Notification) -> Published:
        """Publish a notification for the notifier to deliver (e.g. a test notification,
        `alerting.notification_tests`), keyed by its fingerprint like the evaluator's."""
        record: Record = (notification.fingerprint.encode(), encode(notification), [])
        [done] = self.send(self.topics.notifications, [record])
        return done

    def close(self) -> None:
        with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            close_producer(producer, 5.0)


def publish(
    settings: Settings, topic: str, records: Sequence[Record], timeout_s: float = 15.0
) -> list[Published]:
    """One-shot `Publisher.send` (a producer for this call only)."""
    with Publisher(settings, timeout_s) as publisher:
        return publisher.send(topic, records)


def publish_rule(settings: Settings, rule: AlertRule, replace: bool = False) -> Published:
    """One-shot `Publisher.rule`."""
    with Publisher(settings) as publisher:
        return publisher.rule(rule, replace)


def publish_rule_deletion(settings: Settings, rule_id: str, account_id: str) -> Published:
    """One-shot `Publisher.rule_deletion`."""
    with Publisher(settings) as publisher:
        return publisher.rule_deletion(rule_id, account_id)


def send_test_notification(
    publisher: Publisher, rule: AlertRule, key_name: str | None, sender: str, now: datetime
) -> Notification:
    """Publish a test notification of `rule` to its channels (`alerting.notification_tests`);
    the notifier delivers it and logs its deliveries like any other."""
    if not rule.channels:
        raise AlertAdminError(f"rule {rule.rule_id} has no channels to test")
    notification = build_test_notification(rule, key_name, sender, now, new_test_nonce())
    publisher.notification(notification)
    return notification


def publish_replay(settings: Settings, notification: Notification, delivery_id: str) -> Published:
    """One-shot `Publisher.replay`."""
    with Publisher(settings) as publisher:
        return publisher.replay(notification, delivery_id)


def masked_channel(data: dict[str, Any]) -> dict[str, Any]:
    """A channel's JSON data with every secret masked (`alerting.channel_secrets.mask`:
    `whsec_…abcd`, `xoxb-…abcd`, a Slack webhook URL only as `https://host/…`)."""
    fields = SECRET_FIELDS.get(str(data.get("type", "")), ())
    return {k: mask(k, v) if k in fields and isinstance(v, str) else v for k, v in data.items()}


def masked_rule(rule: AlertRule) -> dict[str, Any]:
    """The rule as JSON-ready data with every channel secret masked (`masked_channel`)."""
    data = rule.model_dump(mode="json")
    data["channels"] = [masked_channel(c) for c in data.get("channels", [])]
    return data
