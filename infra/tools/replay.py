"""`keypulse replay`: rebuild the projections from Kafka into fresh tables, then swap.

Reads `keypulse.requests` and `keypulse.key-events` from the beginning up to the end
offsets seen at start, through the same pure planning and the same writers as the
worker, into a scratch database; then exchanges each rebuilt table with the live one
(materialized views resolve tables by name, so the live views keep feeding the swapped
tables) and drops the scratch database. Tables that cannot be rebuilt from Kafka (alert
history, deliveries) are not touched. Run it with no worker running.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

from infra.clickhouse import make_client, migration_context
from infra.settings import Settings
from projections.migrate import migrate
from projections.writers import ClickHouseIngestStore, ClickHouseKeyStore
from schemas.codec import KeyEventModel, decode_key_event
from schemas.errors import InvalidMessage
from schemas.topics import TopicNames
from streams.worker.ingest_plan import SourceRecord, plan_ingest
from streams.worker.keys_agent import apply_key_events

REBUILT_TABLES = (
    "requests_raw",
    "usage_rollup",
    "key_last_used",
    "key_ip_seen",
    "ingest_batches",
    "keys",
    "key_anomalies",
)


@dataclass(frozen=True)
class ReplayResult:
    request_records: int
    events: int
    rejected: int
    key_events: int


def _read_topic(
    bootstrap: str, topic: str, on_total: Callable[[int], None]
) -> Iterator[list[SourceRecord]]:
    """Chunks of records of `topic` from its beginning to the end offsets seen now."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        client_id="keypulse-replay",
        max_poll_records=2000,
        max_partition_fetch_bytes=64 << 20,
        fetch_max_bytes=64 << 20,
    )
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        begin = consumer.beginning_offsets(tps)
        end = consumer.end_offsets(tps)
        on_total(sum(end[tp] - begin[tp] for tp in tps))
        remaining = {tp for tp in tps if end[tp] > begin[tp]}
        consumer.seek_to_beginning(*tps)
        while remaining:
            polled = consumer.poll(timeout_ms=1000)
            chunk: list[SourceRecord] = []
            for tp, messages in polled.items():
                for m in messages:
                    if m.offset >= end[tp]:
                        break
                    chunk.append(SourceRecord(tp.partition, m.offset, m.key, m.value or b""))
                if consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
                    consumer.pause(tp)
            if chunk:
                yield chunk
    finally:
        consumer.close()


def run_replay(settings: Settings, console: Console) -> ReplayResult:
    live_db = settings.clickhouse.database
    scratch_db = f"{live_db}_replay"
    names = TopicNames.with_prefix(settings.kafka.topic_prefix)
    bootstrap = settings.kafka.bootstrap_servers
    client = make_client(settings, database=scratch_db)
    try:
        client.command(f"DROP DATABASE IF EXISTS {scratch_db}")
        client.command(f"CREATE DATABASE {scratch_db}")
        migrate(client, migration_context(settings))
        ingest_store = ClickHouseIngestStore(client)
        key_store = ClickHouseKeyStore(client)
        records = events = rejected = key_count = 0
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            task = progress.add_task("requests", total=None)
            for chunk in _read_topic(
                bootstrap, names.requests, lambda n: progress.update(task, total=n)
            ):
                plan = plan_ingest(
                    names.requests, chunk, {}, settings.worker.batch_max_events, 8 << 20
                )
                for block in plan.blocks:
                    ingest_store.write(block)
                    events += block.count
                rejected += len(plan.rejected)
                records += len(chunk)
                progress.advance(task, len(chunk))
            keys_task = progress.add_task("key events", total=None)
            for chunk in _read_topic(
                bootstrap, names.key_events, lambda n: progress.update(keys_task, total=n)
            ):
                decoded: list[tuple[int, KeyEventModel]] = []
                for rec in chunk:
                    try:
                        decoded.append((rec.offset, decode_key_event(rec.value)))
                    except InvalidMessage:
                        continue
                loaded = key_store.load([e.key_id for _, e in decoded])
                states, anomalies = apply_key_events(loaded, decoded)
                key_store.save(states, anomalies)
                key_count += len(decoded)
                progress.advance(keys_task, len(chunk))
        ingest_store.checkpoint(names.requests)
        for table in REBUILT_TABLES:
            client.command(f"EXCHANGE TABLES {live_db}.{table} AND {scratch_db}.{table}")
        client.command(f"DROP DATABASE {scratch_db}")
    finally:
        client.close()
    console.print(
        f"replay done: {records} request records, {events} events, {rejected} rejected, "
        f"{key_count} key events; {len(REBUILT_TABLES)} tables swapped in"
    )
    return ReplayResult(records, events, rejected, key_count)
