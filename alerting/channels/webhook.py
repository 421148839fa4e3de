"""Signed webhooks (Standard Webhooks) over httpx, behind the SSRF guard.

Contract of `WebhookNotifier.send`: resolve and check the URL once (`alerting.ssrf`),
connect to that checked address (Host header and TLS SNI carry the original host name),
POST a JSON body with `webhook-id` (the idempotency key, identical on every retry),
`webhook-timestamp` and `webhook-signature: v1,<base64 HMAC-SHA256("{id}.{ts}.{body}")>`;
no redirects, at most `timeout_s` in total. Outcomes: 2xx delivered; 408, 429, 5xx,
timeouts and connection failures retryable (with Retry-After); 410 disables the endpoint;
3xx, other 4xx and blocked URLs permanent.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ssl
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
import orjson
from pydantic import BaseModel, ConfigDict, Field

from alerting.notifier import SendResult
from alerting.retry import classify_http_status, parse_retry_after
from alerting.ssrf import Resolver, UnsafeUrlError, check_url, system_resolver
from schemas.alerts import Channel, Notification, WebhookChannel
from schemas.utc import utc_now


class WebhookConfig(BaseModel):
    """Settings of the webhook channel. `allow_loopback` exists for tests only."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    timeout_s: float = Field(default=10.0, gt=0, le=60)
    allow_loopback: bool = False
    ca_file: str | None = None
    user_agent: str = "keypulse-webhooks/1"
    max_response_bytes: int = Field(default=1024, ge=0)


def webhook_payload(n: Notification) -> dict[str, Any]:
    """The JSON document sent for a notification (deterministic for a given notification)."""
    return {
        "type": f"alert.{n.state.value}",
        "timestamp": n.occurred_at.isoformat(),
        "data": {
            "idempotency_key": n.idempotency_key,
            "fingerprint": n.fingerprint,
            "state": n.state.value,
            "episode": n.episode,
            "repeat_n": n.repeat_n,
            "rule": {
                "id": n.rule.rule_id,
                "name": n.rule.name,
                "kind": n.rule.kind.value,
                "percentile": n.rule.percentile.value if n.rule.percentile else None,
            },
            "account_id": n.account_id,
            "key": {"id": n.key_id, "name": n.key_name},
            "value": n.value,
            "threshold": n.threshold,
            "comparator": n.comparator.value,
            "window_s": n.window_s,
            "evidence": n.evidence,
            "started_at": n.started_at.isoformat(),
            "ended_at": n.ended_at.isoformat() if n.ended_at else None,
        },
    }


def encode_body(n: Notification) -> bytes:
    return orjson.dumps(webhook_payload(n), option=orjson.OPT_SORT_KEYS)


def sign(secret: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256 of "{msg_id}.{timestamp}.{body}">`."""
    mac = hmac.new(secret, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode("ascii")


def signature_headers(secret: bytes, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
    }


class WebhookNotifier:
    """A `Notifier` for `WebhookChannel`s; one attempt per call, one connection per attempt."""

    def __init__(
        self,
        config: WebhookConfig,
        *,
        resolver: Resolver = system_resolver,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._config = config
        self._resolver = resolver
        self._clock = clock
        self._ssl = ssl.create_default_context(cafile=config.ca_file)

    async def send(self, notification: Notification, channel: Channel) -> SendResult:
        if not isinstance(channel, WebhookChannel):
            return SendResult.permanent(f"webhook notifier got a {channel.type} channel")
        try:
            target = await check_url(
                channel.url, resolver=self._resolver, allow_loopback=self._config.allow_loopback
            )
        except UnsafeUrlError as exc:
            return SendResult.permanent(f"blocked URL: {exc}")

        body = encode_body(notification)
        now = self._clock()
        headers = {
            "host": target.host_header,
            "content-type": "application/json",
            "user-agent": self._config.user_agent,
            **signature_headers(
                channel.secret_bytes, notification.idempotency_key, int(now.timestamp()), body
            ),
        }
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        timeout = self._config.timeout_s
        try:
            async with (
                asyncio.timeout(timeout),
                httpx.AsyncClient(
                    verify=self._ssl,
                    follow_redirects=False,
                    trust_env=False,
                    timeout=httpx.Timeout(timeout),
                ) as client,
            ):
                request = client.build_request(
                    "POST", target.connect_url, content=body, headers=headers, extensions=extensions
                )
                response = await client.send(request, stream=True)
                try:
                    snippet = await _read_prefix(response, self._config.max_response_bytes)
                finally:
                    await response.aclose()
        except (TimeoutError, httpx.TimeoutException):
            return SendResult.retryable(f"timed out after {timeout:g} s")
        except httpx.TransportError as exc:
            return SendResult.retryable(f"{type(exc).__name__}: {exc}")

        detail = snippet
        if 300 <= response.status_code < 400:
            detail = f"Location: {response.headers.get('location', '')}"
        retry_after = parse_retry_after(response.headers.get("retry-after"), self._clock())
        return classify_http_status(response.status_code, detail, retry_after)


async def _read_prefix(response: httpx.Response, limit: int) -> str:
    data = b""
    async for chunk in response.aiter_raw():
        data += chunk
        if len(data) >= limit:
            break
    return data[:limit].decode("utf-8", "replace").strip()
