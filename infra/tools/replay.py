"""`keypulse replay`: rebuild the projections from Kafka into fresh tables, then swap.

Reads `keypulse.requests` and `keypulse.key-events` from the beginning up to the end
offsets seen at start, through the same pure planning, the same fold of the key events
(`schemas.key_ledger`, as the keys agent applies it) and the same writers as the
worker, into a scratch database; then exchanges each rebuilt table with the live one
(materialized views resolve tables by name, so the live views keep feeding the swapped
tables) and drops the scratch database. Tables that cannot be rebuilt from Kafka (alert
history, deliveries) are not touched. Run it with no worker running.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from clickhouse_connect.driver.client import Client
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

from infra.clickhouse import make_client, migration_context
from infra.settings import Settings
from infra.wiring import streams_config
from projections.migrate import migrate
from projections.writers import ClickHouseIngestStore, ClickHouseKeyStore
from schemas.codec import decode_key_event
from schemas.errors import InvalidMessage
from schemas.keys import KeyEventModel
from schemas.topics import TopicNames
from streams.worker.ingest_plan import SourceRecord, plan_ingest
from streams.worker.kafka_ranges import iter_ranges, topic_ranges
from streams.worker.keys_agent import AccountState, fold_key_events

REBUILT_TABLES = (
    "requests_raw",
    "usage_rollup",
    "key_last_used",
    "key_ip_seen",
    "key_ip_day",
    "key_status_rollup",
    "ingest_batches",
    "keys",
    "accounts",
    "key_audit",
    "key_anomalies",
)


@dataclass
class ReplayResult:
    request_records: int = 0
    events: int = 0
    rejected: int = 0
    key_events: int = 0
    key_events_refused: int = 0


def _topic_chunks(
    bootstrap: str, topic: str, progress: Progress, label: str
) -> Iterator[list[SourceRecord]]:
    """Chunks of `topic` from its beginning to the end offsets seen now, with a bar."""
    ranges = topic_ranges(bootstrap, topic)
    task = progress.add_task(label, total=sum(r.end - r.start + 1 for r in ranges))
    for chunk in iter_ranges(bootstrap, topic, ranges, client_id="keypulse-replay"):
        yield chunk
        progress.advance(task, len(chunk))


def _replay_requests(
    chunks: Iterator[list[SourceRecord]],
    topic: str,
    store: ClickHouseIngestStore,
    settings: Settings,
    result: ReplayResult,
) -> None:
    """Plan and write the request records as the worker does (same limits)."""
    limits = streams_config(settings).ingest_limits
    for chunk in chunks:
        plan = plan_ingest(topic, chunk, {}, limits)
        for block in plan.blocks:
            store.write(block)
            result.events += block.count
        result.rejected += len(plan.rejected)
        result.request_records += len(chunk)


def _decodable_key_events(chunk: list[SourceRecord]) -> list[KeyEventModel]:
    """The events of the records that decode; the others were dead-lettered live."""
    decoded: list[KeyEventModel] = []
    for rec in chunk:
        try:
            decoded.append(decode_key_event(rec.value))
        except InvalidMessage:
            continue
    return decoded


def _replay_key_events(
    chunks: Iterator[list[SourceRecord]], store: ClickHouseKeyStore, result: ReplayResult
) -> None:
    """Fold the key events as the keys agent does (`fold_key_events`: the one fold,
    `schemas.key_ledger.apply`, in topic order per account) into the scratch database,
    which starts empty: every account begins with no history."""
    states: dict[str, AccountState] = {}
    for chunk in chunks:
        decoded = _decodable_key_events(chunk)
        for event in decoded:
            states.setdefault(event.account_id, AccountState(event.account_id))
        changes = fold_key_events(states, decoded)
        if changes:
            store.save(changes)
        result.key_events += len(decoded)
        result.key_events_refused += len(changes.anomalies)


def _progress(console: Console) -> Progress:
    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


@contextmanager
def _scratch_database(settings: Settings, scratch_db: str) -> Iterator[Client]:
    """A client on a fresh, migrated `scratch_db` (closed on exit)."""
    client = make_client(settings, database=scratch_db)
    try:
        client.command(f"DROP DATABASE IF EXISTS {scratch_db}")
        client.command(f"CREATE DATABASE {scratch_db}")
        migrate(client, migration_context(settings))
        yield client
    finally:
        client.close()


def _swap_in(client: Client, live_db: str, scratch_db: str) -> None:
    for table in REBUILT_TABLES:
        client.command(f"EXCHANGE TABLES {live_db}.{table} AND {scratch_db}.{table}")
    client.command(f"DROP DATABASE {scratch_db}")


def run_replay(settings: Settings, console: Console) -> ReplayResult:
    """Rebuild the projections from Kafka into a scratch database, then swap them in."""
    live_db = settings.clickhouse.database
    scratch_db = f"{live_db}_replay"
    names = TopicNames.with_prefix(settings.kafka.topic_prefix)
    bootstrap = settings.kafka.bootstrap_servers
    result = ReplayResult()
    with _scratch_database(settings, scratch_db) as client:
        ingest_store = ClickHouseIngestStore(client)
        with _progress(console) as progress:
            requests = _topic_chunks(bootstrap, names.requests, progress, "requests")
            _replay_requests(requests, names.requests, ingest_store, settings, result)
            key_events = _topic_chunks(bootstrap, names.key_events, progress, "key events")
            _replay_key_events(key_events, ClickHouseKeyStore(client), result)
        ingest_store.checkpoint(names.requests)
        _swap_in(client, live_db, scratch_db)
    console.print(
        f"replay done: {result.request_records} request records, {result.events} events, "
        f"{result.rejected} rejected, {result.key_events} key events "
        f"({result.key_events_refused} refused); "
        f"{len(REBUILT_TABLES)} tables swapped in"
    )
    return result
