"""Webhook delivery against a real local HTTP server; signatures checked by standardwebhooks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from aiohttp import web
from standardwebhooks import Webhook

from alerting.channels.webhook import WebhookConfig, WebhookNotifier, encode_body
from alerting.ssrf import check_url
from infra.tools.receivers import HttpReceiver
from schemas.alerts import DeliveryOutcome, Notification, NotificationKind, WebhookChannel
from tests.integration.alerting.tls import TlsFiles
from tests.samples.alerting import SECRET

LOCAL = WebhookConfig(allow_loopback=True)


def channel(url: str) -> WebhookChannel:
    return WebhookChannel(url=url, secret=SECRET)


async def test_signed_delivery_verified_independently(
    http_server: HttpReceiver, notification: Callable[..., Notification]
) -> None:
    n = notification()
    result = await WebhookNotifier(LOCAL).send(n, channel(http_server.url("/hook?x=1")))
    assert result.outcome is DeliveryOutcome.DELIVERED, result
    [req] = http_server.received
    assert req.method == "POST"
    assert req.path == "/hook?x=1"
    assert req.headers["Content-Type"] == "application/json"
    assert req.headers["webhook-id"] == n.idempotency_key
    payload = Webhook(SECRET).verify(req.body, req.headers)
    assert payload["type"] == "alert.firing"
    data = payload["data"]
    assert data["rule"] == {
        "id": "rule_1",
        "name": "Error spike",
        "kind": "error_rate",
        "percentile": None,
    }
    assert data["key"] == {"id": "key_abc123", "name": "Production server"}
    assert (data["state"], data["value"], data["threshold"], data["window_s"]) == (
        "firing",
        12.5,
        5.0,
        300,
    )
    assert data["fingerprint"] == n.fingerprint
    assert data["started_at"] == n.started_at.isoformat()
    assert data["ended_at"] is None


async def test_resolved_payload_has_end_time(
    http_server: HttpReceiver, notification: Callable[..., Notification]
) -> None:
    n = notification(NotificationKind.RESOLVED)
    result = await WebhookNotifier(LOCAL).send(n, channel(http_server.url()))
    assert result.outcome is DeliveryOutcome.DELIVERED, result
    payload = Webhook(SECRET).verify(http_server.received[0].body, http_server.received[0].headers)
    assert payload["type"] == "alert.resolved"
    assert n.ended_at is not None
    assert payload["data"]["ended_at"] == n.ended_at.isoformat()


async def test_same_webhook_id_and_body_on_every_retry(
    http_server: HttpReceiver, notification: Callable[..., Notification]
) -> None:
    n = notification()
    http_server.reply(503)
    http_server.reply(429, headers={"Retry-After": "3"})
    ticks = iter([datetime.now(UTC) + timedelta(seconds=s) for s in range(0, 60, 2)])
    notifier = WebhookNotifier(LOCAL, clock=lambda: next(ticks))
    results = [await notifier.send(n, channel(http_server.url())) for _ in range(3)]
    assert [r.outcome for r in results] == [
        DeliveryOutcome.RETRYABLE,
        DeliveryOutcome.RETRYABLE,
        DeliveryOutcome.DELIVERED,
    ]
    assert results[1].retry_after_s == 3
    ids = {r.headers["webhook-id"] for r in http_server.received}
    assert ids == {n.idempotency_key}
    assert {r.body for r in http_server.received} == {encode_body(n)}
    assert len({r.headers["webhook-timestamp"] for r in http_server.received}) == 3
    for req in http_server.received:
        Webhook(SECRET).verify(req.body, req.headers)


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, DeliveryOutcome.DELIVERED),
        (201, DeliveryOutcome.DELIVERED),
        (204, DeliveryOutcome.DELIVERED),
        (400, DeliveryOutcome.PERMANENT),
        (401, DeliveryOutcome.PERMANENT),
        (404, DeliveryOutcome.PERMANENT),
        (408, DeliveryOutcome.RETRYABLE),
        (410, DeliveryOutcome.DISABLE_ENDPOINT),
        (422, DeliveryOutcome.PERMANENT),
        (429, DeliveryOutcome.RETRYABLE),
        (500, DeliveryOutcome.RETRYABLE),
        (502, DeliveryOutcome.RETRYABLE),
        (503, DeliveryOutcome.RETRYABLE),
    ],
)
async def test_status_code_table(
    http_server: HttpReceiver,
    notification: Callable[..., Notification],
    status: int,
    outcome: DeliveryOutcome,
) -> None:
    http_server.reply(status, "" if status == 204 else f"status {status}")
    result = await WebhookNotifier(LOCAL).send(notification(), channel(http_server.url()))
    assert result.outcome is outcome, result
    assert str(status) in result.detail


async def test_retry_after_seconds_and_http_date(
    http_server: HttpReceiver, notification: Callable[..., Notification]
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    http_server.reply(429, headers={"Retry-After": "120"})
    http_server.reply(
        503, headers={"Retry-After": format_datetime(now + timedelta(seconds=90), usegmt=True)}
    )
    notifier = WebhookNotifier(LOCAL, clock=lambda: now)
    first = await notifier.send(notification(), channel(http_server.url()))
    second = await notifier.send(notification(), channel(http_server.url()))
    assert first.retry_after_s == 120
    assert second.retry_after_s == 90


async def test_redirects_are_not_followed(
    http_server: HttpReceiver, notification: Callable[..., Notification]
) -> None:
    for status in (301, 302, 307, 308):
        http_server.reply(status, headers={"Location": http_server.url("/elsewhere")})
        result = await WebhookNotifier(LOCAL).send(notification(), channel(http_server.url()))
        assert result.outcome is DeliveryOutcome.PERMANENT
        assert "/elsewhere" in result.detail
    assert [r.path for r in http_server.received] == ["/hook"] * 4


async def test_timeout_is_retryable(
    http_server: HttpReceiver, notification: Callable[..., Notification]
) -> None:
    async def slow(_: web.Request, __: bytes) -> web.StreamResponse:
        await asyncio.sleep(1)
        return web.Response(text="late")

    http_server.responders.append(slow)
    notifier = WebhookNotifier(WebhookConfig(allow_loopback=True, timeout_s=0.3))
    result = await notifier.send(notification(), channel(http_server.url()))
    assert result.outcome is DeliveryOutcome.RETRYABLE
    assert "timed out" in result.detail


async def test_connection_refused_is_retryable(notification: Callable[..., Notification]) -> None:
    result = await WebhookNotifier(LOCAL).send(notification(), channel("http://127.0.0.1:9/hook"))
    assert result.outcome is DeliveryOutcome.RETRYABLE


async def test_loopback_is_blocked_without_the_test_setting(
    http_server: HttpReceiver, notification: Callable[..., Notification]
) -> None:
    result = await WebhookNotifier(WebhookConfig()).send(notification(), channel(http_server.url()))
    assert result.outcome is DeliveryOutcome.PERMANENT
    assert "loopback" in result.detail
    assert http_server.received == []


async def test_dns_rebinding_between_save_and_send_is_rejected(
    http_server: HttpReceiver, notification: Callable[..., Notification]
) -> None:
    answers = iter([["93.184.216.34"], ["127.0.0.1"]])
    calls: list[str] = []

    async def rebinding(host: str, port: int) -> list[str]:
        calls.append(host)
        return next(answers)

    url = f"http://hooks.example.test:{http_server.port}/hook"
    saved = await check_url(url, resolver=rebinding)  # when the rule is saved
    assert str(saved.ip) == "93.184.216.34"
    result = await WebhookNotifier(WebhookConfig(), resolver=rebinding).send(
        notification(), channel(url)
    )
    assert result.outcome is DeliveryOutcome.PERMANENT
    assert "127.0.0.1" in result.detail
    assert calls == ["hooks.example.test", "hooks.example.test"]
    assert http_server.received == []


async def test_connects_to_the_checked_address_with_original_host(
    http_server: HttpReceiver, notification: Callable[..., Notification]
) -> None:
    calls: list[str] = []

    async def resolver(host: str, port: int) -> list[str]:
        calls.append(host)
        return ["127.0.0.1"]

    url = f"http://hooks.example.test:{http_server.port}/hook"
    result = await WebhookNotifier(LOCAL, resolver=resolver).send(notification(), channel(url))
    assert result.outcome is DeliveryOutcome.DELIVERED
    assert calls == ["hooks.example.test"]  # resolved once per send, never by the client
    assert http_server.received[0].headers["Host"] == f"hooks.example.test:{http_server.port}"


async def test_https_to_checked_address_verifies_certificate_by_name(
    https_server: HttpReceiver, tls_files: TlsFiles, notification: Callable[..., Notification]
) -> None:
    async def resolver(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    config = WebhookConfig(allow_loopback=True, ca_file=str(tls_files.cert))
    url = f"https://hooks.example.test:{https_server.port}/hook"
    result = await WebhookNotifier(config, resolver=resolver).send(notification(), channel(url))
    assert result.outcome is DeliveryOutcome.DELIVERED, result
    Webhook(SECRET).verify(https_server.received[0].body, https_server.received[0].headers)

    wrong = f"https://wrong.example.test:{https_server.port}/hook"
    failed = await WebhookNotifier(config, resolver=resolver).send(notification(), channel(wrong))
    assert failed.outcome is DeliveryOutcome.RETRYABLE
    assert len(https_server.received) == 1
