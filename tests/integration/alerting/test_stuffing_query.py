"""The `credential_stuffing` query against real chDB: generated verification outcomes go
through the codec and the real insert path (`ClickHouseIngestStore.write_outcomes`), and
the answer is compared with the attribution rule applied here in plain Python: per
account in scope and client IP, the account's distinct revoked/expired/deleted keys plus
the IP's distinct malformed/unknown digests when the IP presented a key of the account."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from alerting.ports import StatsQuery, StuffingSource, WindowStats
from projections.detector_queries.stuffing import stuffing_stats
from projections.writers import ClickHouseIngestStore
from schemas.alerts import RuleKind
from schemas.codec import decode_requests, encode
from schemas.requests import OutcomeBatch, OutcomeRecorded, VerificationOutcome

pytestmark = pytest.mark.clickhouse

# A window in the past hour (the table keeps 30 days): 15 minutes ending after NOW's minute.
NOW = datetime.now(UTC).replace(second=30, microsecond=0) - timedelta(hours=1)
WINDOW_S = 900
END = NOW.replace(second=0) + timedelta(minutes=1)
START = END - timedelta(seconds=WINDOW_S)
SCOPE = ("acc_aaa", "acc_bbb")
KEYS = {
    "acc_aaa": [f"key_aa{i:04d}" for i in range(12)],
    "acc_bbb": [f"key_bb{i:04d}" for i in range(4)],
    "acc_ccc": [f"key_cc{i:04d}" for i in range(6)],  # not in scope
}
IPS = ["203.0.113.9", "203.0.113.10", "198.51.100.7", "2001:db8::5", "192.0.2.44", None]
BAD = {"revoked", "expired", "deleted"}
KEYLESS = {"malformed", "unknown"}


def _digest(rng: random.Random, pool: int) -> str:
    return f"{rng.randrange(pool):016x}"


def _events(rng: random.Random) -> list[OutcomeRecorded]:
    """Random presentations, inside and just outside the window, some without client IP or
    (as before migration 0019) without a digest; one IP stuffs hard."""
    events = []
    span = int((END - START).total_seconds() * 1000)
    for _ in range(1_500):
        ip = rng.choice(IPS)
        at = START + timedelta(milliseconds=rng.randrange(-120_000, span + 120_000))
        keyed = rng.random() < 0.4
        if keyed:
            account = rng.choice(list(KEYS))
            outcome = rng.choice(["valid", "revoked", "expired", "deleted", "ip_not_allowed"])
            key: str | None = rng.choice(KEYS[account])
            digest = None
        else:
            account = key = None
            outcome = rng.choice(["unknown", "unknown", "malformed"])
            digest = None if rng.random() < 0.05 else _digest(rng, 400)
        events.append(
            OutcomeRecorded(
                occurred_at=at,
                outcome=VerificationOutcome(outcome),
                key_id=key,
                account_id=account,
                client_ip=ip,  # type: ignore[arg-type]
                count=rng.randrange(1, 50) if outcome == "valid" else 1,
                presented_digest=digest,
            )
        )
    # an IP that holds one valid key of acc_b and presents 40 made-up strings
    for i in range(40):
        at = START + timedelta(seconds=10 + i)
        events.append(
            OutcomeRecorded(
                occurred_at=at,
                outcome=VerificationOutcome.UNKNOWN,
                client_ip="192.0.2.200",  # type: ignore[arg-type]
                presented_digest=f"{10_000 + i:016x}",
            )
        )
    events.append(
        OutcomeRecorded(
            occurred_at=START + timedelta(seconds=5),
            outcome=VerificationOutcome.VALID,
            key_id="key_bb0000",
            account_id="acc_bbb",
            client_ip="192.0.2.200",  # type: ignore[arg-type]
            count=3,
        )
    )
    # pure random stuffing touching no key, and stuffing touching an account out of scope
    for i in range(30):
        for ip, key in (("198.18.0.1", None), ("198.18.0.2", f"key_cc{i % 6:04d}")):
            events.append(
                OutcomeRecorded(
                    occurred_at=START + timedelta(seconds=60 + i),
                    outcome=VerificationOutcome.UNKNOWN
                    if key is None
                    else VerificationOutcome.REVOKED,
                    key_id=key,
                    account_id=None if key is None else "acc_ccc",
                    client_ip=ip,  # type: ignore[arg-type]
                    presented_digest=f"{20_000 + i:016x}" if key is None else None,
                )
            )
            if key is not None:
                events.append(
                    OutcomeRecorded(
                        occurred_at=START + timedelta(seconds=60 + i),
                        outcome=VerificationOutcome.MALFORMED,
                        client_ip=ip,  # type: ignore[arg-type]
                        presented_digest=f"{30_000 + i:016x}",
                    )
                )
    return events


def _insert(client: Client, events: list[OutcomeRecorded]) -> None:
    store = ClickHouseIngestStore(client)
    for offset, start in enumerate(range(0, len(events), 500)):
        decoded = decode_requests(encode(OutcomeBatch.from_events(events[start : start + 500])))
        assert not decoded.rejected
        columns = dict(decoded.outcomes)
        columns["src_partition"] = [0] * decoded.outcome_count
        columns["src_offset"] = [offset] * decoded.outcome_count
        store.write_outcomes(f"stuffing|0:{offset}", columns, decoded.outcome_count)


def _expected(events: list[OutcomeRecorded]) -> dict[tuple[str, str], WindowStats]:
    rows = [e for e in events if e.client_ip is not None and START <= e.occurred_at < END]
    out: dict[tuple[str, str], WindowStats] = {}
    for account in SCOPE:
        for ip in {str(e.client_ip) for e in rows}:
            mine = [e for e in rows if str(e.client_ip) == ip]
            if not any(e.account_id == account for e in mine):
                continue  # the IP presented no key of this account
            bad = [e for e in mine if e.account_id == account and e.outcome in BAD]
            keyless = [e for e in mine if e.outcome in KEYLESS and e.presented_digest]
            distinct = len({e.key_id for e in bad}) + len({e.presented_digest for e in keyless})
            if not distinct:
                continue
            counted = bad + keyless
            per = Counter[str]()
            for e in counted:
                per[str(e.outcome)] += e.count
            order = ["revoked", "expired", "deleted", "malformed", "unknown"]
            source = StuffingSource(
                client_ip=ip,
                distinct_keys=distinct,
                attempts=sum(per.values()),
                outcomes=tuple((o, per[o]) for o in order if per[o]),
                first_at=min(e.occurred_at for e in counted),
                last_at=max(e.occurred_at for e in counted),
            )
            out[(account, f"ip:{ip}")] = WindowStats(distinct, stuffing=source)
    return out


def test_distinct_bad_keys_per_ip_are_attributed_to_the_accounts_it_touched(
    migrated_client: Client,
) -> None:
    events = _events(random.Random(14))
    _insert(migrated_client, events)
    query = StatsQuery(RuleKind.CREDENTIAL_STUFFING, WINDOW_S, accounts=SCOPE)
    got = stuffing_stats(migrated_client, query, NOW)
    expected = _expected(events)
    assert got == expected
    # the data reaches every case: pairs of both accounts, one IP charged to both, and
    # the hard stuffer charged to the account of the one valid key it holds
    assert {a for a, _ in got} == set(SCOPE)
    assert got[("acc_bbb", "ip:192.0.2.200")].requests == 40
    assert ("acc_aaa", "ip:192.0.2.200") not in got  # it presented no key of acc_aaa
    assert not {s for _, s in got} & {"ip:198.18.0.1", "ip:198.18.0.2"}  # unattributable
    assert any(
        s.stuffing and s.stuffing.outcomes and len(s.stuffing.outcomes) >= 4 for s in got.values()
    )
    assert not any(subject == "ip:None" for _, subject in got)
    # an account outside the scope is answered for nobody
    only_c: Any = stuffing_stats(
        migrated_client, StatsQuery(RuleKind.CREDENTIAL_STUFFING, WINDOW_S), NOW
    )
    assert only_c == {}
