"""Support for the end-to-end alerting tests: settings, traffic, staying clear of minute ends."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from infra.settings import SecretsSettings, Settings
from streams.client import RecorderConfig, UsageRecorder
from tests.integration.ingest_helpers import worker_settings

TEST_MASTER_KEYRING = "mk_tests:" + "dGVzdHMgb25seTogbm90IGEgc2VjcmV0IGF0IGFsbCE="
"""The master key the alerting tests seal channel secrets with (32 bytes, public)."""


def alert_settings(
    tmp_path: Path, bootstrap: str, prefix: str, smtp_port: int = 25, **alerting: Any
) -> Settings:
    """A worker with fast evaluation and retries that may call local receivers, and the
    tests' master key (`TEST_MASTER_KEYRING`) for channel secrets."""
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
    settings = worker_settings(
        tmp_path, bootstrap, prefix, alerting=values | alerting, batch_max_ms=100
    )
    secrets = SecretsSettings(master_key=SecretStr(TEST_MASTER_KEYRING))
    return settings.model_copy(update={"secrets": secrets})


def record_traffic(
    bootstrap: str, topic: str, key_id: str, account_id: str, statuses: list[int]
) -> None:
    """Produce one request event per status through the client library, and flush."""
    recorder = UsageRecorder(RecorderConfig(bootstrap_servers=bootstrap, topic=topic))
    try:
        for status in statuses:
            recorder.record(key_id, account_id, "GET", "/v1/render", status, 12.5, "198.51.100.7")
        assert recorder.flush(30)
    finally:
        recorder.close()


async def away_from_minute_end(margin_s: float = 12) -> None:
    """Sleep into the next minute when less than `margin_s` of this one is left, so the
    traffic of one test phase falls in one minute's window."""
    now = datetime.now(UTC)
    left = 60 - now.second - now.microsecond / 1e6
    if left < margin_s:
        await asyncio.sleep(left + 0.5)
