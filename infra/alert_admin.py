"""What the `rules` and `deliveries` commands do, without typer: build and check rules,
publish rule events and replays to Kafka (confirmed), read rules and deliveries.

Errors a user can fix are `AlertAdminError`s whose message is one line naming the field.
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from alerting.ssrf import UnsafeUrlError, check_url, parse_url
from infra.settings import Settings
from schemas.alerts import (
    AlertRule,
    AlertRuleCreated,
    AlertRuleDeleted,
    AlertRuleUpdated,
    Notification,
    SlackChannel,
    WebhookChannel,
)
from schemas.codec import REPLAY_HEADER, encode
from schemas.topics import TopicNames
from streams.client.kafka_client import build_producer, close_producer


class AlertAdminError(Exception):
    """A rule or request the user must fix; the message is one line."""


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
    """Webhook URLs must pass the SSRF guard now (resolved); Slack webhooks an allowed host."""
    cfg = settings.alerting
    allowed = {h.lower() for h in cfg.slack_allowed_webhook_hosts}
    for i, chan in enumerate(rule.channels):
        if isinstance(chan, WebhookChannel):
            try:
                asyncio.run(check_url(chan.url, allow_loopback=cfg.allow_loopback_webhooks))
            except UnsafeUrlError as exc:
                raise AlertAdminError(f"invalid rule: channels.{i}.url: {exc}") from None
        elif isinstance(chan, SlackChannel) and chan.webhook_url is not None:
            try:
                host = parse_url(chan.webhook_url).host.lower()
            except UnsafeUrlError as exc:
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


def publish(
    settings: Settings,
    topic: str,
    records: Sequence[tuple[bytes, bytes, list[tuple[str, bytes]]]],
    timeout_s: float = 15.0,
) -> list[Published]:
    """Send (key, value, headers) records and wait until the broker confirmed each."""
    from kafka.errors import KafkaError

    from infra.kafka.admin import KafkaUnreachable

    try:
        producer = build_producer(
            settings.kafka.bootstrap_servers,
            f"{settings.kafka.client_id}-admin",
            None,
            {"bootstrap_timeout_ms": 5_000},
        )
    except (KafkaError, OSError) as exc:
        raise KafkaUnreachable(
            f"no Kafka broker reachable at {settings.kafka.bootstrap_servers}"
        ) from exc
    try:
        futures = [producer.send(topic, value=v, key=k, headers=h) for k, v, h in records]
        out = []
        for future in futures:
            meta = future.get(timeout=timeout_s)
            out.append(Published(meta.topic, meta.partition, meta.offset))
        return out
    except KafkaError as exc:
        raise KafkaUnreachable(f"publishing to {topic} failed: {exc!r}") from exc
    finally:
        close_producer(producer, 5.0)


def topics(settings: Settings) -> TopicNames:
    return TopicNames.with_prefix(settings.kafka.topic_prefix)


def publish_rule(settings: Settings, rule: AlertRule, replace: bool = False) -> Published:
    event: BaseModel = AlertRuleUpdated(rule=rule) if replace else AlertRuleCreated(rule=rule)
    [done] = publish(
        settings, topics(settings).alert_rules, [(rule.rule_id.encode(), encode(event), [])]
    )
    return done


def publish_rule_deletion(settings: Settings, rule_id: str, account_id: str) -> Published:
    try:
        event = AlertRuleDeleted(rule_id=rule_id, account_id=account_id)
    except ValidationError as exc:
        raise AlertAdminError(describe_validation_error(exc)) from None
    [done] = publish(
        settings, topics(settings).alert_rules, [(rule_id.encode(), encode(event), [])]
    )
    return done


def publish_replay(settings: Settings, notification: Notification, delivery_id: str) -> Published:
    """Put the original notification back on the topic, marked for one delivery."""
    headers = [(REPLAY_HEADER, delivery_id.encode())]
    record = (notification.fingerprint.encode(), encode(notification), headers)
    [done] = publish(settings, topics(settings).notifications, [record])
    return done


def masked_rule(rule: AlertRule) -> dict[str, Any]:
    """The rule as JSON-ready data with secrets and tokens masked."""
    data = rule.model_dump(mode="json")
    for chan in data.get("channels", []):
        for secret in ("secret", "bot_token"):
            if chan.get(secret):
                chan[secret] = chan[secret][:6] + "…"
    return data
