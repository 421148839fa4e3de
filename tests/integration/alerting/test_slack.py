"""Slack delivery with slack-sdk pointed at a local HTTP server standing in for Slack."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from alerting.channels.slack import SlackConfig, SlackNotifier
from infra.tools.receivers import HttpReceiver
from schemas.alerts import DeliveryOutcome, Notification, NotificationKind, SlackChannel

TOKEN = "xoxb-1234-5678-abcdef"


def local_config(server: HttpReceiver) -> SlackConfig:
    return SlackConfig(
        api_base_url=server.url("/api/"), allowed_webhook_hosts=frozenset({"127.0.0.1"})
    )


def webhook_channel(server: HttpReceiver) -> SlackChannel:
    return SlackChannel(webhook_url=server.url("/services/T000/B000/XXXX"))


def bot_channel() -> SlackChannel:
    return SlackChannel(bot_token=TOKEN, channel="#alerts")


async def test_incoming_webhook_ok_with_block_kit(
    http_server: HttpReceiver, notification: Callable[..., Notification]
) -> None:
    http_server.reply(200, "ok")
    n = notification()
    result = await SlackNotifier(local_config(http_server)).send(n, webhook_channel(http_server))
    assert result.outcome is DeliveryOutcome.DELIVERED, result
    [req] = http_server.received
    assert req.path == "/services/T000/B000/XXXX"
    body = json.loads(req.body)
    assert body["text"].startswith("[FIRING] Error spike on Production server (key_abc123)")
    header, section, context = body["blocks"]
    assert header["type"] == "header"
    assert header["text"]["text"] == "[FIRING] Error spike on Production server (key_abc123)"
    fields = " | ".join(f["text"] for f in section["fields"])
    for expected in ("*Key*", "key_abc123", "*Rule*", "Error spike", "12.50% &gt; 5%", "*Window*"):
        assert expected in fields
    assert "*State*\nfiring" in fields
    assert context["type"] == "context"
    assert n.fingerprint in context["elements"][0]["text"]
    assert body["metadata"]["event_payload"]["idempotency_key"] == n.idempotency_key


async def test_chat_post_message_ok(
    http_server: HttpReceiver, notification: Callable[..., Notification]
) -> None:
    http_server.reply(200, {"ok": True, "channel": "C1", "ts": "1700000000.000100"})
    n = notification(NotificationKind.RESOLVED)
    result = await SlackNotifier(local_config(http_server)).send(n, bot_channel())
    assert result.outcome is DeliveryOutcome.DELIVERED, result
    assert "1700000000.000100" in result.detail
    [req] = http_server.received
    assert req.path == "/api/chat.postMessage"
    assert req.headers["Authorization"] == f"Bearer {TOKEN}"
    body = json.loads(req.body)
    assert body["channel"] == "#alerts"
    assert body["text"].startswith("[RESOLVED] Error spike")
    assert body["blocks"][0]["type"] == "header"
    assert body["metadata"]["event_type"] == "keypulse_alert"


@pytest.mark.parametrize(
    ("status", "payload", "headers", "outcome", "retry_after"),
    [
        (200, {"ok": False, "error": "channel_not_found"}, None, DeliveryOutcome.PERMANENT, None),
        (200, {"ok": False, "error": "invalid_auth"}, None, DeliveryOutcome.PERMANENT, None),
        (200, {"ok": False, "error": "internal_error"}, None, DeliveryOutcome.RETRYABLE, None),
        (
            429,
            {"ok": False, "error": "ratelimited"},
            {"Retry-After": "30"},
            DeliveryOutcome.RETRYABLE,
            30,
        ),
        (500, "<html>oops</html>", None, DeliveryOutcome.RETRYABLE, None),
    ],
)
async def test_chat_post_message_failures(
    http_server: HttpReceiver,
    notification: Callable[..., Notification],
    status: int,
    payload: object,
    headers: dict[str, str] | None,
    outcome: DeliveryOutcome,
    retry_after: float | None,
) -> None:
    http_server.reply(status, payload, headers)
    result = await SlackNotifier(local_config(http_server)).send(notification(), bot_channel())
    assert result.outcome is outcome, result
    assert result.retry_after_s == retry_after
    assert len(http_server.received) == 1  # slack-sdk did not retry on its own


@pytest.mark.parametrize(
    ("status", "body", "headers", "outcome", "retry_after"),
    [
        (429, "rate_limited", {"Retry-After": "7"}, DeliveryOutcome.RETRYABLE, 7),
        (400, "invalid_payload", None, DeliveryOutcome.PERMANENT, None),
        (403, "action_prohibited", None, DeliveryOutcome.PERMANENT, None),
        (404, "channel_not_found", None, DeliveryOutcome.PERMANENT, None),
        (500, "rollup_error", None, DeliveryOutcome.RETRYABLE, None),
    ],
)
async def test_incoming_webhook_failures(
    http_server: HttpReceiver,
    notification: Callable[..., Notification],
    status: int,
    body: str,
    headers: dict[str, str] | None,
    outcome: DeliveryOutcome,
    retry_after: float | None,
) -> None:
    http_server.reply(status, body, headers)
    notifier = SlackNotifier(local_config(http_server))
    result = await notifier.send(notification(), webhook_channel(http_server))
    assert result.outcome is outcome, result
    assert result.retry_after_s == retry_after
    assert body in result.detail
    assert len(http_server.received) == 1


async def test_webhook_host_outside_the_allow_list_is_refused(
    http_server: HttpReceiver, notification: Callable[..., Notification]
) -> None:
    result = await SlackNotifier(SlackConfig()).send(notification(), webhook_channel(http_server))
    assert result.outcome is DeliveryOutcome.PERMANENT
    assert http_server.received == []


async def test_unreachable_slack_is_retryable(notification: Callable[..., Notification]) -> None:
    config = SlackConfig(api_base_url="http://127.0.0.1:9/api/", timeout_s=2)
    result = await SlackNotifier(config).send(notification(), bot_channel())
    assert result.outcome is DeliveryOutcome.RETRYABLE, result
