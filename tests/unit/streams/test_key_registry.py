"""The pure key-registry reducer `reduce_key` and the fold `apply_key_events`: every
transition and every anomaly case of docs/key-registry.md."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from schemas.codec import KeyEventModel
from schemas.keys import KeyAccess, KeyCreated, KeyDeleted, KeyRenamed, KeyRevoked, KeyType
from schemas.plans import Plan
from streams.worker.key_registry import reduce_key
from streams.worker.keys_agent import apply_key_events
from streams.worker.ports import Anomaly, KeyState, KeyStatus
from tests.samples.streams import key_state

ACCOUNT = "acc_registry"
KEY = "key_registry01"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def created(minutes: int = 0, name: str = "ci key", account: str = ACCOUNT) -> KeyCreated:
    return KeyCreated(
        key_id=KEY,
        account_id=account,
        name=name,
        key_type=KeyType.LIVE,
        access=KeyAccess.READ_ONLY,
        secret_hash="sha256:" + "ab" * 32,
        plan=Plan.PRO,
        occurred_at=_at(minutes),
    )


def renamed(minutes: int, name: str, account: str = ACCOUNT) -> KeyRenamed:
    return KeyRenamed(key_id=KEY, account_id=account, name=name, occurred_at=_at(minutes))


def revoked(minutes: int, account: str = ACCOUNT) -> KeyRevoked:
    return KeyRevoked(key_id=KEY, account_id=account, occurred_at=_at(minutes))


def deleted(minutes: int, account: str = ACCOUNT) -> KeyDeleted:
    return KeyDeleted(key_id=KEY, account_id=account, occurred_at=_at(minutes))


ACTIVE = key_state(
    KEY, ACCOUNT, name="ci key", access="read_only", created_at=T0, updated_at=T0, version=10
)
REVOKED = replace(
    ACTIVE, status=KeyStatus.REVOKED, revoked_at=_at(5), updated_at=_at(5), version=12
)
DELETED = replace(
    REVOKED, status=KeyStatus.DELETED, deleted_at=_at(9), updated_at=_at(9), version=15
)


def test_create_makes_an_active_key_from_the_event() -> None:
    outcome = reduce_key(None, created(), version=10)
    assert outcome.changed and outcome.anomaly is None
    assert outcome.state == ACTIVE


def test_a_second_create_is_a_no_op() -> None:
    outcome = reduce_key(REVOKED, created(30, name="other"), version=40)
    assert (outcome.state, outcome.changed, outcome.anomaly) == (REVOKED, False, None)


def test_rename_changes_name_time_and_version() -> None:
    outcome = reduce_key(ACTIVE, renamed(3, "prod key"), version=11)
    assert outcome.changed and outcome.anomaly is None
    assert outcome.state == replace(ACTIVE, name="prod key", updated_at=_at(3), version=11)


def test_rename_to_the_same_name_is_a_no_op() -> None:
    outcome = reduce_key(ACTIVE, renamed(3, "ci key"), version=11)
    assert (outcome.state, outcome.changed) == (ACTIVE, False)


def test_rename_of_a_revoked_key_keeps_it_revoked() -> None:
    outcome = reduce_key(REVOKED, renamed(7, "old key"), version=13)
    assert outcome.changed
    assert outcome.state == replace(REVOKED, name="old key", updated_at=_at(7), version=13)
    assert outcome.state.status is KeyStatus.REVOKED


def test_revoke_records_the_revocation_time() -> None:
    outcome = reduce_key(ACTIVE, revoked(5), version=12)
    assert outcome.changed and outcome.anomaly is None
    assert outcome.state == REVOKED


def test_revoke_is_idempotent_and_keeps_the_first_time() -> None:
    outcome = reduce_key(REVOKED, revoked(8), version=14)
    assert (outcome.state, outcome.changed, outcome.anomaly) == (REVOKED, False, None)
    assert outcome.state is not None and outcome.state.revoked_at == _at(5)


def test_delete_of_a_revoked_key() -> None:
    outcome = reduce_key(REVOKED, deleted(9), version=15)
    assert outcome.changed and outcome.anomaly is None
    assert outcome.state == DELETED


@pytest.mark.parametrize(
    "event",
    [renamed(1, "x"), revoked(1), deleted(1)],
    ids=["rename", "revoke", "delete"],
)
def test_anomaly_unknown_key(event: KeyEventModel) -> None:
    outcome = reduce_key(None, event, version=3)
    assert (outcome.state, outcome.changed, outcome.anomaly) == (None, False, Anomaly.UNKNOWN_KEY)
    assert outcome.detail == f"{event.type} before key.created"


def test_anomaly_delete_without_revoke_leaves_the_key_active() -> None:
    outcome = reduce_key(ACTIVE, deleted(2), version=11)
    assert (outcome.state, outcome.changed) == (ACTIVE, False)
    assert outcome.anomaly is Anomaly.DELETE_WITHOUT_REVOKE


@pytest.mark.parametrize(
    "event",
    [renamed(20, "x"), revoked(20), deleted(20)],
    ids=["rename", "revoke", "delete"],
)
def test_anomaly_event_after_delete_is_ignored(event: KeyEventModel) -> None:
    outcome = reduce_key(DELETED, event, version=20)
    assert (outcome.state, outcome.changed) == (DELETED, False)
    assert outcome.anomaly is Anomaly.EVENT_AFTER_DELETE
    assert outcome.detail == f"{event.type} after delete"


@pytest.mark.parametrize(
    "event",
    [renamed(4, "x", "acc_intruder"), revoked(4, "acc_intruder"), deleted(4, "acc_intruder")],
    ids=["rename", "revoke", "delete"],
)
def test_anomaly_account_mismatch_changes_nothing(event: KeyEventModel) -> None:
    for state in (ACTIVE, REVOKED):
        outcome = reduce_key(state, event, version=30)
        assert (outcome.state, outcome.changed) == (state, False)
        assert outcome.anomaly is Anomaly.ACCOUNT_MISMATCH
        assert outcome.detail == "event for acc_intruder"


def test_account_mismatch_is_checked_before_delete_state() -> None:
    outcome = reduce_key(DELETED, revoked(30, "acc_intruder"), version=31)
    assert outcome.anomaly is Anomaly.ACCOUNT_MISMATCH


def test_apply_key_events_folds_in_order_and_records_anomalies() -> None:
    events: list[tuple[int, KeyEventModel]] = [
        (10, created()),
        (11, deleted(2)),  # not revoked yet: anomaly, not applied
        (12, revoked(5)),
        (13, revoked(6)),  # duplicate: no change
        (15, deleted(9)),
        (16, renamed(10, "late")),  # after delete: anomaly
    ]
    current: dict[str, KeyState] = {}
    states, anomalies = apply_key_events(current, events)
    assert states == [DELETED]  # one row per changed key: its last state
    assert current == {KEY: DELETED}
    assert [(a.version, a.anomaly, a.event_type) for a in anomalies] == [
        (11, Anomaly.DELETE_WITHOUT_REVOKE, "key.deleted"),
        (16, Anomaly.EVENT_AFTER_DELETE, "key.renamed"),
    ]
    assert anomalies[0].event_id == events[1][1].event_id
    assert anomalies[1].occurred_at == _at(10)


def test_apply_key_events_again_changes_nothing() -> None:
    """Re-delivery of the same events (replay, a crash before the commit) is a no-op."""
    events: list[tuple[int, KeyEventModel]] = [(10, created()), (12, revoked(5))]
    current: dict[str, KeyState] = {}
    first, _ = apply_key_events(current, events)
    again, anomalies = apply_key_events(current, events)
    assert first == [REVOKED]
    assert (again, anomalies) == ([], [])
