"""`DeliveryLog`: the newest row per delivery decides its status, open deliveries are the
pending and retrying ones, and endpoints are disabled and re-enabled."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alerting.fingerprint import channel_id
from alerting.ports import DeliveryRecord, DisabledEndpoint
from schemas.alerts import Notification, WebhookChannel
from tests.contract.backends import Backend
from tests.samples.alerting import SECRET, make_notification

T0 = datetime(2026, 11, 26, 12, 0, 30, tzinfo=UTC)
"""Whole milliseconds: ClickHouse keeps times to the millisecond."""
HOOK = WebhookChannel(url="https://hooks.example.com/k", secret=SECRET)
NOTIFICATION = Notification.model_validate(make_notification().model_dump() | {"channels": [HOOK]})


def row(
    delivery_id: str,
    attempt: int,
    status: str,
    outcome: str = "",
    next_attempt_at: datetime | None = None,
) -> DeliveryRecord:
    """One row of a delivery to HOOK; attempt n happened n seconds after T0."""
    return DeliveryRecord(
        delivery_id,
        NOTIFICATION,
        0,
        channel_id(HOOK),
        attempt,
        T0 + timedelta(seconds=attempt),
        status,
        outcome=outcome,
        detail=f"{status} after attempt {attempt}",
        next_attempt_at=next_attempt_at,
        first_attempt_at=T0 + timedelta(seconds=1) if attempt else None,
    )


def test_nothing_appended_finds_nothing(backend: Backend) -> None:
    log = backend.deliveries()
    lookup = log.latest(["dlv_unknown"])
    assert (lookup.status, lookup.attempts) == ({}, {})
    assert log.open_deliveries() == []
    assert log.disabled_endpoints() == set()


def test_the_newest_row_of_each_delivery_decides(backend: Backend) -> None:
    log = backend.deliveries()
    log.append([row(d, 0, "pending") for d in ("dlv_a", "dlv_b", "dlv_c", "dlv_d")])
    retrying = row("dlv_b", 1, "retrying", "retryable", T0 + timedelta(seconds=30))
    log.append([row("dlv_a", 1, "delivered", outcome="delivered"), retrying])
    # Two rows of one delivery in one append: the later one is the newer.
    log.append([row("dlv_c", 1, "retrying"), row("dlv_c", 2, "dead", outcome="permanent")])

    lookup = log.latest(["dlv_a", "dlv_b", "dlv_c", "dlv_d", "dlv_unknown"])
    assert lookup.status == {
        "dlv_a": "delivered",
        "dlv_b": "retrying",
        "dlv_c": "dead",
        "dlv_d": "pending",
    }
    assert lookup.attempts == {"dlv_a": 1, "dlv_b": 1, "dlv_c": 2, "dlv_d": 0}
    assert log.latest(["dlv_a"]).status == {"dlv_a": "delivered"}

    expected_open = [retrying, row("dlv_d", 0, "pending")]
    by_id = sorted(log.open_deliveries(), key=lambda r: r.delivery_id)
    assert by_id == expected_open
    reopened = backend.deliveries()  # what the scheduler resumes after a restart
    assert sorted(reopened.open_deliveries(), key=lambda r: r.delivery_id) == expected_open


def test_endpoints_are_disabled_and_re_enabled(backend: Backend) -> None:
    log = backend.deliveries()
    for chan, disabled in (("webhook_a", True), ("webhook_b", True), ("webhook_a", False)):
        log.set_endpoint(DisabledEndpoint(chan, "webhook", "HTTP 410", T0, disabled))
    assert log.disabled_endpoints() == {"webhook_b"}
    assert backend.deliveries().disabled_endpoints() == {"webhook_b"}
