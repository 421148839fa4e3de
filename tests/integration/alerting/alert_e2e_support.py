"""Support for the end-to-end alerting tests: an SMTP sink, settings, traffic, waiting."""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from infra.settings import Settings, load_settings
from streams.client import RecorderConfig, UsageRecorder


@dataclass
class MailSink:
    """aiosmtpd handler keeping every accepted message."""

    messages: list[EmailMessage] = field(default_factory=list)

    async def handle_DATA(  # noqa: N802 (aiosmtpd hook name)
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        assert isinstance(envelope.content, bytes)
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 Message accepted"


async def start_smtp() -> tuple[MailSink, int, asyncio.AbstractServer]:
    sink = MailSink()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(sink, hostname="localhost"), sock=sock)
    return sink, port, server


def alert_settings(
    tmp_path: Path, bootstrap: str, prefix: str, smtp_port: int = 25, **alerting: Any
) -> Settings:
    values: dict[str, Any] = {
        "eval_interval_s": 0.5,
        "eval_min_gap_s": 0.2,
        "idle_advance_s": 2.0,
        "allow_loopback_webhooks": True,
        "slack_allowed_webhook_hosts": ["127.0.0.1"],
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp_port,
        "smtp_security": "none",
        "smtp_timeout_s": 5,
        "retry_fast_delays_s": [0.3, 0.3, 0.3],
    }
    values.update(alerting)
    return load_settings(
        data_dir=tmp_path,
        kafka={
            "bootstrap_servers": bootstrap,
            "topic_prefix": prefix,
            "consumer_group": f"{prefix}worker",
        },
        worker={"batch_max_ms": 100},
        alerting=values,
    )


def record_traffic(
    bootstrap: str, topic: str, key_id: str, account_id: str, statuses: list[int]
) -> None:
    """Produce one request event per status through the producer library, and flush."""
    # compression=None: the worker's aiokafka cannot read lz4 without cramjam installed.
    config = RecorderConfig(bootstrap_servers=bootstrap, topic=topic, compression=None)
    recorder = UsageRecorder(config)
    try:
        for status in statuses:
            recorder.record(key_id, account_id, "GET", "/v1/render", status, 12.5, "198.51.100.7")
        assert recorder.flush(30)
    finally:
        recorder.close()


async def wait_until(
    condition: Callable[[], bool], timeout_s: float = 30, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def away_from_minute_end(margin_s: float = 12) -> None:
    """Sleep into the next minute when less than `margin_s` of this one is left."""
    now = datetime.now(UTC)
    left = 60 - now.second - now.microsecond / 1e6
    if left < margin_s:
        await asyncio.sleep(left + 0.5)
