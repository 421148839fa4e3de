"""Looking for key secrets where none may be: topic records, ClickHouse tables, logs.

A secret is found by its format (`pk_live_`/`pk_test_` and 36 base62 characters) and
kept only when its checksum holds (`schemas.key_format.check_secret`), so a hit is a
real keypulse key, never noise; callers may also pass the exact secrets they created.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from schemas.key_format import ParsedSecret, check_secret

_CANDIDATE = re.compile(rb"pk_(?:live|test)_[0-9A-Za-z]{36}")


def find_secrets(data: bytes, known: Iterable[str] = ()) -> set[str]:
    """Well-formed secrets in `data`, plus every one of `known` that occurs in it."""
    found = {
        m.group().decode()
        for m in _CANDIDATE.finditer(data)
        if isinstance(check_secret(m.group().decode()), ParsedSecret)
    }
    return found | {s for s in known if s.encode() in data}


def topic_bytes(bootstrap: str, topics: Iterable[str]) -> dict[str, tuple[int, bytes]]:
    """Every record of each topic (key, value and headers, decompressed by the client):
    the number of records and their bytes joined."""
    consumer: Any = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        client_id="secret-scan",
    )
    out: dict[str, tuple[int, bytes]] = {}
    try:
        for topic in topics:
            tps = [
                TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())
            ]
            if not tps:
                continue
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            ends = consumer.end_offsets(tps)
            chunks: list[bytes] = []
            count = 0
            while any(consumer.position(tp) < ends[tp] for tp in tps):
                for records in consumer.poll(timeout_ms=1000).values():
                    for r in records:
                        count += 1
                        chunks += [r.key or b"", r.value or b""]
                        chunks += [k.encode() + (v or b"") for k, v in r.headers or []]
            out[topic] = (count, b"\n".join(chunks))
    finally:
        consumer.close()
    return out


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
