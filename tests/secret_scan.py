"""Looking for key secrets where none may be: topic records, ClickHouse tables, logs.

A secret is found by the one finder, `schemas.key_scan.find_keys` (format and checksum,
so a hit is a real keypulse key, never noise); callers may also pass the exact secrets
they created.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from schemas.key_scan import find_keys


def find_secrets(data: bytes, known: Iterable[str] = ()) -> set[str]:
    """Well-formed secrets in `data`, plus every one of `known` that occurs in it."""
    found = {key.secret for key in find_keys(data)}
    return found | {s for s in known if s.encode() in data}


def topic_bytes(bootstrap: str, topics: Iterable[str]) -> dict[str, tuple[int, bytes]]:
    """Every record of each topic (key, value and headers, decompressed by the client):
    the number of records and their bytes joined.

    One consumer reads every non-empty partition of every topic at once (hundreds of
    topics at the end of a session: one assignment, not one round of requests each)."""
    consumer: Any = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        client_id="secret-scan",
    )
    chunks: dict[str, list[bytes]] = {}
    counts: dict[str, int] = {}
    try:
        tps: list[TopicPartition] = []
        for topic in topics:
            parts = sorted(consumer.partitions_for_topic(topic) or ())
            if parts:
                chunks[topic], counts[topic] = [], 0
                tps += [TopicPartition(topic, p) for p in parts]
        if not tps:
            return {}
        starts, ends = consumer.beginning_offsets(tps), consumer.end_offsets(tps)
        todo = [tp for tp in tps if ends[tp] > starts[tp]]
        if todo:
            consumer.assign(todo)
            consumer.seek_to_beginning(*todo)
        while any(consumer.position(tp) < ends[tp] for tp in todo):
            for tp, records in consumer.poll(timeout_ms=1000).items():
                for r in records:
                    counts[tp.topic] += 1
                    chunks[tp.topic] += [r.key or b"", r.value or b""]
                    chunks[tp.topic] += [k.encode() + (v or b"") for k, v in r.headers or []]
    finally:
        consumer.close()
    return {t: (counts[t], b"\n".join(chunks[t])) for t in chunks}


def table_bytes(client: Any) -> dict[str, tuple[int, bytes]]:
    """Every row of every table of every non-system database, as TabSeparated text
    (aggregate states as their binary form), with the table's row count."""
    tables = client.query(
        "SELECT database, name FROM system.tables WHERE database NOT IN "
        "('system', 'INFORMATION_SCHEMA', 'information_schema') AND engine NOT IN ('View', 'Null')"
    ).result_rows
    out: dict[str, tuple[int, bytes]] = {}
    for database, name in tables:
        table = f"`{database}`.`{name}`"
        count = int(client.command(f"SELECT count() FROM {table}"))
        data = client.raw_query(f"SELECT * FROM {table} FORMAT TabSeparated")
        out[f"{database}.{name}"] = (count, bytes(data))
    return out
