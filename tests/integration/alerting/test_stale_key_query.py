"""The `stale_key_presented` query against real chDB: rows inserted directly into
`verification_outcomes` and `keys`, the answer compared with the truth computed here
(per key in scope: revoked and expired verdicts in the window, the newest time and
client IP, and the key's latest registry row)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from clickhouse_connect.driver.client import Client

from alerting.ports import StalePresentations, StatsQuery, WindowStats
from projections.alert_queries import ClickHouseEvaluationQueries
from schemas.alerts import RuleKind

pytestmark = pytest.mark.clickhouse

NOW = datetime(2026, 12, 1, 12, 7, 30, tzinfo=UTC)
WINDOW_S = 900
START = datetime(2026, 12, 1, 11, 53, tzinfo=UTC)  # the window ends after 12:07
END = datetime(2026, 12, 1, 12, 8, tzinfo=UTC)
OUTCOMES = ("valid", "unknown", "revoked", "deleted", "expired", "ip_not_allowed")
KEYS = {
    "acc_a": ["key_a1", "key_a2", "key_a3", "key_a4"],
    "acc_b": ["key_b1", "key_b2"],
    "acc_c": ["key_c1"],
}
OUTCOME_COLUMNS = ["event_id", "occurred_at", "outcome", "account_id", "key_id", "client_ip"]
KEY_COLUMNS = [
    "account_id",
    "key_id",
    "name",
    "key_type",
    "access",
    "status",
    "secret_hash",
    "hint",
    "created_at",
    "created_by",
    "updated_at",
    "revoked_at",
    "revoke_reason",
    "expires_at",
    "replaced_by",
    "seq",
]


def _key_row(account: str, key: str, seq: int, rng: random.Random) -> list[Any]:
    revoked = rng.random() < 0.5
    created = datetime(2026, 11, 1, tzinfo=UTC)
    return [
        account,
        key,
        f"{key} name v{seq}",
        "live",
        "full",
        "revoked" if revoked else "active",
        "sha256:" + "0" * 64,
        "pk_live_abcd",
        created,
        "test",
        created + timedelta(days=seq),
        created + timedelta(days=20, minutes=seq) if revoked else None,
        "compromised" if revoked else None,
        None if revoked else created + timedelta(days=25, hours=seq),
        None if revoked else f"key_next{seq}",
        seq,
    ]


def _outcome_rows(rng: random.Random) -> list[list[Any]]:
    rows = []
    for account, keys in KEYS.items():
        for key in keys:
            for _ in range(rng.randrange(0, 40)):
                at = START + timedelta(milliseconds=rng.randrange(-600_000, 1_500_000))
                ip = rng.choice(["198.51.100.7", "2001:db8::5", ""])
                rows.append([uuid4(), at, rng.choice(OUTCOMES), account, key, ip])
    rows.append([uuid4(), NOW, "revoked", "", "", "203.0.113.9"])  # no key: never counted
    return rows


def _truth(
    outcomes: list[list[Any]], registry: dict[tuple[str, str], list[Any]], scope: set[str]
) -> dict[tuple[str, str], WindowStats]:
    by_key: dict[tuple[str, str], list[list[Any]]] = {}
    for row in outcomes:
        _, at, outcome, account, key, _ = row
        in_scope = account in scope or (account, key) == ("acc_b", "key_b1")
        if key and in_scope and outcome in ("revoked", "expired") and START <= at < END:
            by_key.setdefault((account, key), []).append(row)
    truth = {}
    for pair, rows in by_key.items():
        last = max(rows, key=lambda r: r[1])
        reg = registry.get(pair)
        stale = StalePresentations(
            revoked=sum(r[2] == "revoked" for r in rows),
            expired=sum(r[2] == "expired" for r in rows),
            last_at=last[1].replace(microsecond=last[1].microsecond // 1000 * 1000),
            last_ip=last[5],
            name=reg[2] if reg else None,
            revoked_at=reg[11] if reg else None,
            revoke_reason=reg[12] if reg else None,
            expires_at=reg[13] if reg else None,
            replaced_by=reg[14] if reg else None,
        )
        truth[pair] = WindowStats(stale.presented, stale=stale)
    return truth


def test_stale_presentations_per_key_in_one_query(migrated_client: Client) -> None:
    rng = random.Random(14)
    outcomes = _outcome_rows(rng)
    registry: dict[tuple[str, str], list[Any]] = {}
    key_rows = []
    for account, keys in KEYS.items():
        for key in keys[:-1] if account == "acc_a" else keys:  # key_a4 has no registry row
            for seq in (1, 2):  # two versions: the latest (seq 2) wins
                row = _key_row(account, key, seq, rng)
                key_rows.append(row)
                registry[(account, key)] = row
    migrated_client.insert("keys", key_rows, column_names=KEY_COLUMNS)
    migrated_client.insert(
        "verification_outcomes",
        [[*r, 1, 0, i] for i, r in enumerate(outcomes)],
        column_names=[*OUTCOME_COLUMNS, "count", "src_partition", "src_offset"],
    )
    queries = ClickHouseEvaluationQueries(migrated_client, "requests")
    query = StatsQuery(RuleKind.STALE_KEY_PRESENTED, WINDOW_S, ("acc_a",), (("acc_b", "key_b1"),))
    got = queries.window_stats(query, NOW)
    truth = _truth(outcomes, registry, {"acc_a"})
    assert got == truth
    assert len(truth) >= 3  # the seed gives several keys with presentations in the window
    assert any(s.stale and s.stale.name is None for s in truth.values())  # key_a4
    # A count row weighs its count, like the table sums it.
    migrated_client.insert(
        "verification_outcomes",
        [[uuid4(), NOW, "expired", "acc_c", "key_c1", "192.0.2.4", 25, 0, 10_000]],
        column_names=[*OUTCOME_COLUMNS, "count", "src_partition", "src_offset"],
    )
    only_c = StatsQuery(RuleKind.STALE_KEY_PRESENTED, WINDOW_S, ("acc_c",))
    c1 = queries.window_stats(only_c, NOW)[("acc_c", "key_c1")]
    before = _truth(outcomes, registry, {"acc_c"}).get(("acc_c", "key_c1"))
    assert c1.requests == (before.requests if before else 0) + 25
    assert c1.stale is not None and c1.stale.last_ip == "192.0.2.4"
