"""The two implementations of alerting's ports that the contract suite holds to each other.

`MemoryBackend` hands out the fakes of `tests.fakes.alerting` (the same object on every
call); `ClickHouseBackend` hands out a new `projections` adapter on every call, over one
migrated chDB database, so a second call is "the same store after a restart". Seeding
the evaluation queries (`add_requests`, `add_key`, `land`) writes the tables the ingest
and keys agents write.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime
from typing import Protocol

from clickhouse_connect.driver.client import Client

from alerting.ports import AlertStateStore, DeliveryLog, EvaluationQueries, RuleSource, RuleStore
from projections.alert_queries import ClickHouseEvaluationQueries
from projections.alert_store import (
    ClickHouseAlertStateStore,
    ClickHouseDeliveryLog,
    ClickHouseRuleStore,
)
from projections.writers import ClickHouseKeyStore
from schemas.alerts import AlertHistoryEntry
from schemas.key_ledger import KeyStatus
from schemas.keys import RevokeReason
from streams.worker.ports import KeyChanges
from tests.fakes.alerting import FakeQueries, FakeRules, FakeState, MemoryLog, Requests
from tests.samples.streams import LOG_COLUMNS, key_record, log_row

REQUESTS_TOPIC = "contract.requests"


class SeededQueries(EvaluationQueries, Protocol):
    """The evaluation queries plus the seeding of what they read."""

    def add_requests(self, *requests: Requests) -> None: ...

    def add_key(self, account_id: str, key_id: str, name: str, status: str = "active") -> None: ...

    def land(
        self, max_occurred_at: datetime, ends: dict[int, int] | None = None, events: int = 1
    ) -> None: ...


class Rules(RuleSource, RuleStore, Protocol):
    """The rules projection: written by the rules agent, read by the evaluator."""


class States(AlertStateStore, Protocol):
    def history(self, fingerprint: str) -> list[AlertHistoryEntry]: ...


class Backend(Protocol):
    name: str

    def queries(self) -> SeededQueries: ...

    def rules(self) -> Rules: ...

    def states(self) -> States: ...

    def deliveries(self) -> DeliveryLog: ...


class MemoryBackend:
    name = "memory"

    def __init__(self) -> None:
        self._queries = FakeQueries()
        self._rules = FakeRules()
        self._states = FakeState()
        self._deliveries = MemoryLog()

    def queries(self) -> SeededQueries:
        return self._queries

    def rules(self) -> Rules:
        return self._rules

    def states(self) -> States:
        return self._states

    def deliveries(self) -> DeliveryLog:
        return self._deliveries


_RAW = ["event_id", "occurred_at", "key_id", "account_id", "method", "route", "status"]
_RAW += ["latency_ms", "client_ip", "bytes_out", "is_render", "watermarked"]
_RAW += ["src_partition", "src_offset"]
_KEYS_CREATED = datetime(2025, 1, 1, tzinfo=UTC)


class SeededClickHouseQueries(ClickHouseEvaluationQueries):
    """The adapter, plus inserts into `requests_raw`, `keys` and `ingest_batches`."""

    def __init__(self, client: Client, counter: itertools.count[int]) -> None:
        super().__init__(client, REQUESTS_TOPIC)
        self._db = client
        self._counter = counter

    def add_requests(self, *requests: Requests) -> None:
        rows = [
            [uuid.uuid4(), r.at, r.key_id, r.account_id, "GET", "/v1/x", r.status, r.latency_ms]
            for r in requests
            for _ in range(r.count)
        ]
        for row in rows:
            row.extend(["198.51.100.7", 10, False, False, 0, next(self._counter)])
        self._db.insert("requests_raw", rows, column_names=_RAW, settings={"async_insert": 0})

    def add_key(self, account_id: str, key_id: str, name: str, status: str = "active") -> None:
        """The key's row as the keys agent writes it (the newest call wins: a higher
        seq). The name may be empty here, which no event allows: a row of old data."""
        at = _KEYS_CREATED
        state = KeyStatus(status)
        key = key_record(
            key_id,
            account_id,
            name=name,
            status=state,
            created_at=at,
            updated_at=at,
            revoked_at=None if state is KeyStatus.ACTIVE else at,
            revoke_reason=None if state is KeyStatus.ACTIVE else RevokeReason.USER_REQUEST,
            deleted_at=at if state is KeyStatus.DELETED else None,
            seq=next(self._counter),
        )
        ClickHouseKeyStore(self._db).save(KeyChanges(keys=[key]))

    def land(
        self, max_occurred_at: datetime, ends: dict[int, int] | None = None, events: int = 1
    ) -> None:
        seq = next(self._counter)
        ranges = {p: (0, end) for p, end in (ends or {}).items()}
        row = log_row(REQUESTS_TOPIC, seq, ranges, events, max_occurred_at, token=f"land-{seq}")
        self._db.insert(
            "ingest_batches", [row], column_names=LOG_COLUMNS, settings={"async_insert": 0}
        )


class ClickHouseBackend:
    name = "clickhouse"

    def __init__(self, client: Client) -> None:
        self._client = client
        self._counter = itertools.count(1)

    def queries(self) -> SeededQueries:
        return SeededClickHouseQueries(self._client, self._counter)

    def rules(self) -> Rules:
        return ClickHouseRuleStore(self._client)

    def states(self) -> States:
        return ClickHouseAlertStateStore(self._client)

    def deliveries(self) -> DeliveryLog:
        return ClickHouseDeliveryLog(self._client)
