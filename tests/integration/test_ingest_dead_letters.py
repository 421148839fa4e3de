"""Over 1,000 malformed messages mixed with valid ones: each reaches the DLQ with its
reason; a batch with one bad row dead-letters that row alone and counts the others."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import orjson
import pytest

from infra.clickhouse import make_client
from infra.wiring import running_worker
from schemas.codec import encode
from schemas.requests import RequestBatch, RequestCompleted
from schemas.topics import TopicNames
from tests.integration.ingest_helpers import produce, read_all, wait_for_events, worker_settings

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]

MAX_BYTES = 64 * 1024


def _valid(i: int) -> RequestCompleted:
    return RequestCompleted(
        key_id="key_dlqtest01",
        account_id="acc_dlq",
        method="POST",
        route="/v1/render",
        status=200,
        latency_ms=float(i % 100),
        client_ip="203.0.113.9",
    )


def _batches_with_a_bad_row(n: int) -> list[tuple[bytes, str]]:
    """Batches of three rows whose middle row has a bad address: (value, its event id)."""
    out: list[tuple[bytes, str]] = []
    for i in range(n):
        batch_obj = orjson.loads(encode(RequestBatch.from_events([_valid(r) for r in range(3)])))
        cols = batch_obj["columns"]
        cols["client_ip"] = ["203.0.113.9", f"999.{i}.0.1", "::1"]
        out.append((orjson.dumps(batch_obj), cols["event_id"][1]))
    return out


def _malformed(rng: random.Random) -> list[tuple[bytes, str]]:
    good = encode(_valid(0))
    good_obj = orjson.loads(good)
    out: list[tuple[bytes, str]] = []
    for _ in range(300):  # fuzzed bytes; the 0xff lead byte is never valid UTF-8 JSON
        out.append((b"\xff" + rng.randbytes(rng.randint(0, 200)), "not_json"))
    for _ in range(100):  # a valid message cut short
        out.append((good[: len(good) - rng.randint(1, 40)], "not_json"))
    for i in range(150):  # JSON, but not our message
        out.append((orjson.dumps([i, "x"]), "schema_violation"))
        out.append((orjson.dumps({"type": f"something.else.{i}"}), "unknown_type"))
    for i in range(200):  # schema violations in single events
        broken = dict(good_obj, status=700 + i)
        out.append((orjson.dumps(broken), "schema_violation"))
    for i in range(100):  # versions newer than this consumer knows
        out.append((orjson.dumps(dict(good_obj, schema_version=2 + i)), "unsupported_version"))
    for _ in range(20):  # oversized
        out.append((b'{"type":"request.completed","pad":"' + b"x" * MAX_BYTES + b'"}', "too_large"))
    return out


async def test_every_malformed_message_is_dead_lettered_with_its_reason(
    tmp_path: Path, kafka_bootstrap: str, topics: TopicNames, topic_prefix: str
) -> None:
    rng = random.Random(11)
    bad = _malformed(rng)
    bad_rows = _batches_with_a_bad_row(200)
    assert len(bad) + len(bad_rows) >= 1000
    valid = [encode(RequestBatch.from_events([_valid(i) for i in range(50)])) for _ in range(40)]
    mixed: list[bytes] = [*(v for v, _ in bad), *(v for v, _ in bad_rows), *valid]
    rng.shuffle(mixed)
    produce(kafka_bootstrap, topics.requests, mixed)
    counted = 40 * 50 + 2 * len(bad_rows)  # the two good rows of each batch with a bad row
    dead_count = len(bad) + len(bad_rows)

    settings = worker_settings(tmp_path, kafka_bootstrap, topic_prefix, max_message_bytes=MAX_BYTES)
    async with running_worker(settings) as worker:
        await wait_for_events(worker, counted, dead=dead_count, timeout_s=120)
        # still running: later valid traffic is counted too
        produce(kafka_bootstrap, topics.requests, valid[:2])
        await wait_for_events(worker, counted + 2 * 50, dead=dead_count)
        ingest = worker.app.ingest
        assert ingest is not None
        assert ingest.stats.dead_letters == dead_count
        assert ingest.stats.dead_letter_rows == len(bad_rows)
        assert ingest.stats.events == counted + 2 * 50

    client = make_client(settings)
    try:
        total = counted + 2 * 50
        assert client.query("SELECT count() FROM requests_raw").result_rows == [(total,)]
        assert client.query(
            "SELECT sum(requests) FROM usage_rollup WHERE tier = 'minute'"
        ).result_rows == [(total,)]
    finally:
        client.close()

    dead = read_all(kafka_bootstrap, topics.dead_letters)
    assert len(dead) == dead_count
    whole = [(v, h) for v, h in dead if "keypulse-batch-index" not in h]
    rows = [(v, h) for v, h in dead if "keypulse-batch-index" in h]
    expected = Counter((value, reason) for value, reason in bad)
    got = Counter((value, headers["keypulse-reason"].decode()) for value, headers in whole)
    assert got == expected
    assert Counter(
        (orjson.loads(v)["event_id"], h["keypulse-batch-index"], h["keypulse-reason"])
        for v, h in rows
    ) == Counter((event_id, b"1", b"schema_violation") for _, event_id in bad_rows)
    for _, headers in dead:
        assert headers["keypulse-source-topic"] == topics.requests.encode()
        assert int(headers["keypulse-source-offset"]) >= 0
        assert headers["keypulse-error"]
