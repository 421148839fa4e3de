"""A batch is not all-or-nothing: through the real worker, the good rows of a batch with
bad rows are counted exactly, and each bad row is one dead-letter record of its own, with
its reason and its index in the batch (`keypulse-batch-index`)."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from infra.clickhouse import make_client
from infra.wiring import running_worker
from schemas.codec import encode
from schemas.requests import RequestBatch, RequestCompleted
from schemas.topics import TopicNames
from tests.integration.ingest_helpers import produce, read_all, wait_for_events, worker_settings

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]

KEYS = [f"key_rowdlq{i:03d}" for i in range(7)]
GOOD = 1000


def _event(rng: random.Random, at: datetime) -> RequestCompleted:
    return RequestCompleted(
        occurred_at=at,
        key_id=rng.choice(KEYS),
        account_id="acc_rowdlq",
        method="GET",
        route="/v1/rows",
        status=rng.choice([200, 200, 201, 404, 503]),
        latency_ms=rng.uniform(1, 90),
        client_ip=f"203.0.113.{rng.randint(1, 20)}",
        bytes_out=rng.randint(0, 5000),
    )


Bad = tuple[RequestCompleted, str, dict[str, Any]]
"""A bad row: its event, the reason it is rejected for, and raw values that replace its own."""


def _bad_rows(rng: random.Random, now: datetime) -> list[Bad]:
    """Rows out of the time bounds of a record produced now, and rows of a bad type."""
    recent = now - timedelta(minutes=1)
    return [
        (_event(rng, datetime(2099, 12, 31, tzinfo=UTC)), "future_timestamp", {}),
        (_event(rng, now + timedelta(hours=2)), "future_timestamp", {}),
        (_event(rng, now - timedelta(days=40)), "stale_timestamp", {}),
        (_event(rng, datetime(2001, 1, 1, tzinfo=UTC)), "stale_timestamp", {}),
        (_event(rng, recent), "schema_violation", {"status": "200"}),
        (_event(rng, recent), "schema_violation", {"is_render": 1}),
        (_event(rng, recent), "schema_violation", {"client_ip": "fe80::1%eth0"}),
    ]


def _mixed_batch(
    rng: random.Random, good: list[RequestCompleted], bad: list[Bad]
) -> tuple[bytes, dict[str, tuple[int, str, str]]]:
    """The batch bytes and, per bad row's event id, (its index in the batch, its reason,
    the field its error names)."""
    rows: list[tuple[RequestCompleted, str | None, dict[str, Any]]] = [(e, None, {}) for e in good]
    for item in bad:
        rows.insert(rng.randrange(len(rows) + 1), item)
    batch = orjson.loads(encode(RequestBatch.from_events([e for e, _, _ in rows])))
    for index, (_, _, raw) in enumerate(rows):
        for name, value in raw.items():
            batch["columns"][name][index] = value
    expected = {
        str(e.event_id): (i, r, next(iter(raw), "occurred_at_ms"))
        for i, (e, r, raw) in enumerate(rows)
        if r is not None
    }
    return orjson.dumps(batch), expected


def _rows_by_key(client: Any) -> dict[str, tuple[int, int, int]]:
    rows = client.query(
        "SELECT key_id, count(), countIf(status >= 500), sum(bytes_out) FROM requests_raw "
        "GROUP BY key_id"
    ).result_rows
    return {k: (int(n), int(e), int(b)) for k, n, e, b in rows}


async def test_the_good_rows_of_a_batch_count_and_each_bad_row_is_dead_lettered(
    tmp_path: Path, kafka_bootstrap: str, topics: TopicNames, topic_prefix: str
) -> None:
    rng = random.Random(23)
    now = datetime.now(UTC)
    good = [_event(rng, now - timedelta(seconds=rng.uniform(0, 20 * 86400))) for _ in range(GOOD)]
    value, expected = _mixed_batch(rng, good, _bad_rows(rng, now))
    only_bad, expected_only_bad = _mixed_batch(rng, [], _bad_rows(rng, now)[:2])
    produce(kafka_bootstrap, topics.requests, [value, only_bad])

    settings = worker_settings(tmp_path, kafka_bootstrap, topic_prefix)
    dead_rows = len(expected) + len(expected_only_bad)
    async with running_worker(settings) as worker:
        await wait_for_events(worker, GOOD, dead=dead_rows)
        ingest = worker.app.ingest
        assert ingest is not None
        assert (ingest.stats.events, ingest.stats.dead_letters) == (GOOD, dead_rows)
        assert ingest.stats.dead_letter_rows == dead_rows

    truth: dict[str, tuple[int, int, int]] = {}
    for key in KEYS:
        mine = [e for e in good if e.key_id == key]
        errors = sum(1 for e in mine if e.status >= 500)
        truth[key] = (len(mine), errors, sum(e.bytes_out for e in mine))
    client = make_client(settings)
    try:
        assert _rows_by_key(client) == {k: v for k, v in truth.items() if v[0]}
        ids = client.query("SELECT event_id FROM requests_raw").result_rows
        assert sorted(str(i) for (i,) in ids) == sorted(str(e.event_id) for e in good)
        assert client.query(
            "SELECT sum(requests) FROM usage_rollup WHERE tier = 'minute'"
        ).result_rows == [(GOOD,)]
    finally:
        client.close()

    dead = read_all(kafka_bootstrap, topics.dead_letters)
    assert len(dead) == dead_rows
    got: dict[str, tuple[int, str, str]] = {}
    for raw, headers in dead:
        index = int(headers["keypulse-batch-index"])
        row = orjson.loads(raw)
        reason = headers["keypulse-reason"].decode()
        assert row["type"] == "request.completed"
        if reason != "schema_violation":  # a valid single event, only out of its time bounds
            RequestCompleted.model_validate(row)
        error = headers["keypulse-error"].decode()
        assert error.startswith(f"events[{index}].")
        field = error.removeprefix(f"events[{index}].").split(":")[0]
        assert headers["keypulse-source-topic"] == topics.requests.encode()
        got[row["event_id"]] = (index, reason, field)
    assert got == expected | expected_only_bad
    assert Counter(r for _, r, _ in got.values()) == Counter(
        future_timestamp=4, stale_timestamp=2, schema_violation=3
    )
