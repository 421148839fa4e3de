"""Slack delivery through slack-sdk: an incoming webhook or `chat.postMessage`.

Contract of `SlackNotifier.send`: one request, slack-sdk's own retry handlers disabled,
never sleeps. The message is Block Kit (header; fields for key, rule, value against
threshold, window and state; a context line with the time and fingerprint) with a plain
text fallback, and carries the idempotency key as message metadata. Outcomes: success
delivered; HTTP 429 / `ratelimited` retryable with Retry-After; 5xx, Slack's transient
errors and network failures retryable; `ok: false` and other 4xx permanent. Incoming-
webhook URLs must point at a host in `allowed_webhook_hosts`. The URL and the token are
secrets: no outcome's detail quotes them.
"""

from __future__ import annotations

from typing import Any

import aiohttp
from pydantic import BaseModel, ConfigDict, Field
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from alerting import render
from alerting.notifier import SendResult
from alerting.retry import classify_http_status, parse_retry_after
from schemas.alerts import (
    Channel,
    Notification,
    NotificationKind,
    SlackChannel,
    UrlError,
    parse_http_url,
)
from schemas.utc import utc_now

TRANSIENT_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)


class SlackConfig(BaseModel):
    """Settings of the Slack channel; tests point `api_base_url` and the hosts at a local server."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    api_base_url: str = "https://slack.com/api/"
    allowed_webhook_hosts: frozenset[str] = frozenset({"hooks.slack.com"})
    timeout_s: int = Field(default=10, gt=0, le=60)


def _plain(text: str, limit: int = 150) -> dict[str, Any]:
    return {"type": "plain_text", "text": render.one_line(text, limit), "emoji": True}


def _field(label: str, value: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": f"*{label}*\n{_escape(render.one_line(value, 500))}"}


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_blocks(n: Notification) -> list[dict[str, Any]]:
    """Block Kit for a notification."""
    state = n.state.value + (
        f" (repeat {n.repeat_n})" if n.state is NotificationKind.REPEAT else ""
    )
    value = (
        f"{render.format_value(n, n.value)} {n.comparator.symbol} "
        f"{render.format_value(n, n.threshold)}"
    )
    evidence = (
        [
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": _escape(render.one_line(n.evidence, 500))},
            }
        ]
        if n.evidence
        else []
    )
    return [
        {"type": "header", "text": _plain(render.title(n))},
        *evidence,
        {
            "type": "section",
            "fields": [
                _field("Key", render.subject_label(n)),
                _field("Rule", n.rule.name),
                _field(f"{render.metric_name(n).capitalize()} vs threshold", value),
                _field("Window", render.format_duration(n.window_s)),
                _field("State", state),
                _field("Started", n.started_at.isoformat()),
            ],
        },
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": (
                        f"<!date^{int(n.occurred_at.timestamp())}^{{date_short_pretty}} "
                        f"{{time_secs}}|{n.occurred_at.isoformat()}> · "
                        f"fingerprint `{n.fingerprint}` · episode {n.episode}"
                    ),
                }
            ],
        },
    ]


def fallback_text(n: Notification) -> str:
    text = f"{render.title(n)}: {render.condition(n)}"
    return f"{text}. {render.one_line(n.evidence, 500)}" if n.evidence else text


def slack_metadata(n: Notification) -> dict[str, Any]:
    return {
        "event_type": "keypulse_alert",
        "event_payload": {
            "idempotency_key": n.idempotency_key,
            "fingerprint": n.fingerprint,
            "state": n.state.value,
            "episode": n.episode,
        },
    }


def _without_url(detail: str, url: str) -> str:
    """`detail` without the incoming-webhook URL or its path (the URL is the secret; some
    aiohttp errors quote it), so it can be logged and stored in `deliveries`."""
    path = parse_http_url(url).path
    return detail.replace(url, "<webhook URL>").replace(path, "/…") if len(path) > 1 else detail


class SlackNotifier:
    """A `Notifier` for `SlackChannel`s (opened: `alerting.notifier.OpeningNotifier`
    opens sealed tokens and URLs before this sees them)."""

    def __init__(self, config: SlackConfig) -> None:
        self._config = config

    async def send(self, notification: Notification, channel: Channel) -> SendResult:
        if not isinstance(channel, SlackChannel):
            return SendResult.permanent(f"slack notifier got a {channel.type} channel")
        if channel.webhook_url is not None:
            return await self._send_webhook(notification, channel.webhook_url)
        assert channel.bot_token is not None and channel.channel is not None
        return await self._post_message(notification, channel.bot_token, channel.channel)

    async def _send_webhook(self, n: Notification, url: str) -> SendResult:
        try:
            host = parse_http_url(url).host
        except UrlError as exc:
            return SendResult.permanent(f"Slack webhook URL: {exc}")
        if host not in self._config.allowed_webhook_hosts:
            return SendResult.permanent(f"Slack webhook host {host!r} is not allowed")
        client = AsyncWebhookClient(url, timeout=self._config.timeout_s, retry_handlers=[])
        try:
            response = await client.send(
                text=fallback_text(n), blocks=slack_blocks(n), metadata=slack_metadata(n)
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            return SendResult.retryable(_without_url(f"{type(exc).__name__}: {exc}", url))
        retry_after = parse_retry_after(response.headers.get("Retry-After"), utc_now())
        body = _without_url(render.one_line(str(response.body or ""), 200), url)
        if response.status_code == 200:
            return SendResult.delivered(f"HTTP 200: {body}")
        return classify_http_status(response.status_code, body, retry_after)

    async def _post_message(self, n: Notification, token: str, channel: str) -> SendResult:
        client = AsyncWebClient(
            token=token,
            base_url=self._config.api_base_url,
            timeout=self._config.timeout_s,
            retry_handlers=[],
        )
        try:
            response = await client.chat_postMessage(
                channel=channel,
                text=fallback_text(n),
                blocks=slack_blocks(n),
                metadata=slack_metadata(n),
            )
        except SlackApiError as exc:
            # slack-sdk raises with a SlackResponse, or with the raw aiohttp response when
            # the body was not JSON; read both shapes.
            resp: Any = exc.response
            status = int(getattr(resp, "status_code", 0) or getattr(resp, "status", 0))
            data = getattr(resp, "data", None)
            error = str(data.get("error", "")) if isinstance(data, dict) else ""
            retry_after = parse_retry_after(resp.headers.get("Retry-After"), utc_now())
            if status == 429 or error == "ratelimited":
                return SendResult.retryable(f"HTTP {status}: ratelimited", retry_after)
            if status >= 500 or error in TRANSIENT_ERRORS:
                return SendResult.retryable(
                    f"HTTP {status}: {error or 'server error'}", retry_after
                )
            return SendResult.permanent(f"HTTP {status}: {error or render.one_line(str(data))}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            return SendResult.retryable(f"{type(exc).__name__}: {exc}")
        return SendResult.delivered(f"ok ts={response.get('ts', '')}")
