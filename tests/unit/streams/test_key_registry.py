"""The keys agent's fold over the ledger (`fold_key_events`, `restore`): what one take of
key events writes to the projection, compared with `schemas.key_ledger.apply` folding the
same events in plain Python; every refused event recorded under its refusal code and
changing nothing; re-delivered events judged once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from schemas.key_ledger import AccountLedger, KeyStatus, apply
from schemas.keys import (
    AccountCreated,
    KeyAccess,
    KeyEventModel,
    KeyRenamed,
    KeyType,
    RevokeReason,
)
from schemas.plans import Plan
from streams.worker.keys_agent import (
    AccountState,
    CorruptHistory,
    account_record,
    audit_detail,
    fold_key_events,
    key_id_of,
    restore,
)
from streams.worker.ports import AccountHistory, AuditEntry, KeyChanges
from tests.samples.keys import Chain

ACCOUNT = "acc_registry"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def _plain(events: list[KeyEventModel]) -> dict[str, AccountLedger]:
    """The ledgers `schemas.key_ledger.apply` makes of `events`, refusals skipped."""
    ledgers: dict[str, AccountLedger] = {}
    for event in events:
        ledger, refusal = apply(ledgers.get(event.account_id), event)
        if refusal is None and ledger is not None:
            ledgers[event.account_id] = ledger
    return ledgers


def _fold(
    events: list[KeyEventModel], states: dict[str, AccountState] | None = None
) -> tuple[KeyChanges, dict[str, AccountState]]:
    states = {} if states is None else states
    for event in events:
        states.setdefault(event.account_id, AccountState(event.account_id))
    return fold_key_events(states, events), states


def _history() -> Chain:
    chain = Chain(ACCOUNT, Plan.FREE, at=T0)
    chain.create_key("key_registry01", "ci key", access=KeyAccess.READ_ONLY, at=_at(1))
    chain.create_key("key_registry02", "admin", KeyType.TEST, KeyAccess.ADMIN, at=_at(2))
    chain.rename("key_registry01", "prod key", at=_at(3))
    chain.revoke("key_registry01", RevokeReason.COMPROMISED, at=_at(4))
    chain.delete("key_registry01", at=_at(5))
    chain.change_plan(Plan.PRO, at=_at(6))
    return chain


def test_a_take_writes_what_the_ledger_folds() -> None:
    chain = _history()
    changes, states = _fold(chain.events)
    (truth,) = _plain(chain.events).values()
    assert states[ACCOUNT].ledger == truth
    assert changes.anomalies == []
    assert [e.event for e in changes.audit] == chain.events
    assert changes.accounts == [account_record(truth)]
    assert changes.keys == [truth.keys["key_registry01"], truth.keys["key_registry02"]]
    deleted = truth.keys["key_registry01"]
    assert (deleted.status, deleted.name, deleted.seq) == (KeyStatus.DELETED, "prod key", 6)
    assert (deleted.revoked_at, deleted.revoke_reason) == (_at(4), RevokeReason.COMPROMISED)
    assert changes.accounts[0].plan == "pro" and changes.accounts[0].seq == 7
    assert changes.accounts[0].head == chain.events[-1].event_id


def test_audit_details_say_what_changed() -> None:
    changes, _ = _fold(_history().events)
    assert [(e.event.type, key_id_of(e.event), e.detail) for e in changes.audit] == [
        ("account.created", "", "plan: free"),
        ("key.created", "key_registry01", "name: ci key; type: live; access: read_only"),
        ("key.created", "key_registry02", "name: admin; type: test; access: admin"),
        ("key.renamed", "key_registry01", "name: prod key"),
        ("key.revoked", "key_registry01", "reason: compromised"),
        ("key.deleted", "key_registry01", ""),
        ("account.plan_changed", "", "plan: free -> pro"),
    ]


def test_refused_events_change_nothing_and_are_recorded_under_their_code() -> None:
    chain = Chain(ACCOUNT, Plan.FREE, at=T0)
    chain.create_key("key_registry01", at=_at(1))
    chain.create_key("key_registry02", at=_at(2))  # Free: 2 live keys, now full
    changes, states = _fold(chain.events)
    before = states[ACCOUNT].ledger
    assert before is not None
    snapshot = before.copy()
    head, prior = chain.events[-1], chain.events[-2]
    stale = KeyRenamed(
        account_id=ACCOUNT, seq=head.seq, prev=prior.event_id, key_id="key_registry01", name="x"
    )
    broken = KeyRenamed(
        account_id=ACCOUNT, seq=head.seq + 1, prev=uuid4(), key_id="key_registry01", name="y"
    )
    again = AccountCreated(account_id=ACCOUNT, seq=1, prev=None, plan=Plan.PRO)
    ghost = Chain("acc_ghost", Plan.FREE)
    orphan = ghost.create_key("key_ghost001")
    limited = Chain(ACCOUNT, Plan.FREE)
    limited.events = list(chain.events)
    third = limited.create_key("key_registry03")
    not_revoked = limited.delete("key_registry01")
    not_revoked = not_revoked.model_copy(update={"seq": third.seq, "prev": third.prev})
    refused: list[KeyEventModel] = [stale, broken, again, orphan, third, not_revoked]
    changes, states = _fold(refused, states)
    assert states[ACCOUNT].ledger == snapshot
    assert states["acc_ghost"].ledger is None
    assert (changes.audit, changes.keys, changes.accounts) == ([], [], [])
    assert [(a.event_id, a.anomaly, a.key_id, a.version) for a in changes.anomalies] == [
        (stale.event_id, "stale_sequence", "key_registry01", 3),
        (broken.event_id, "broken_chain", "key_registry01", 4),
        (again.event_id, "account_exists", "", 1),
        (orphan.event_id, "account_not_found", "key_ghost001", 2),
        (third.event_id, "plan_limit_reached", "key_registry03", 4),
        (not_revoked.event_id, "key_not_revoked", "key_registry01", 4),
    ]
    assert changes.anomalies[0].detail == (
        f"seq 3, prev {prior.event_id}; account at seq 3, head {head.event_id}"
    )
    assert changes.anomalies[3].detail == (
        f"seq 2, prev {ghost.events[0].event_id}; account not created"
    )
    assert changes.anomalies[2].detail.startswith("seq 1, prev none; account at seq 3")
    assert {a.event_type for a in changes.anomalies} == {
        "key.renamed",
        "account.created",
        "key.created",
        "key.deleted",
    }
    assert changes.anomalies[1].occurred_at == broken.occurred_at


def test_a_stale_writer_between_valid_events_changes_nothing() -> None:
    chain = _history()
    stale = replace_seq(chain.events[3], name="stale writer's name")
    events = [*chain.events[:5], stale, *chain.events[5:]]
    changes, states = _fold(events)
    assert states[ACCOUNT].ledger == _plain(chain.events)[ACCOUNT]
    assert [e.event for e in changes.audit] == chain.events
    assert [(a.event_id, a.anomaly) for a in changes.anomalies] == [
        (stale.event_id, "stale_sequence")
    ]


def replace_seq(event: KeyEventModel, **changes: object) -> KeyEventModel:
    """Another writer's event with the same seq and prev as `event` (a new event id)."""
    return event.model_copy(update={"event_id": uuid4(), **changes})


def test_re_delivered_events_are_judged_once() -> None:
    chain = _history()
    stale = replace_seq(chain.events[2])
    events = [*chain.events, stale]
    first, states = _fold(events)
    again, states = _fold(events, states)
    assert again.anomalies == []  # refused before: nothing new, not a second verdict
    assert again.audit == first.audit  # applied before: the same rows again
    assert (again.keys, again.accounts) == (first.keys, first.accounts)
    assert states[ACCOUNT].ledger == _plain(chain.events)[ACCOUNT]


def test_a_refused_event_re_delivered_after_later_events_keeps_its_verdict() -> None:
    chain = Chain(ACCOUNT, Plan.FREE)
    chain.create_key("key_registry01")
    chain.create_key("key_registry02")
    over = Chain(ACCOUNT, Plan.FREE)
    over.events = list(chain.events)
    third = over.create_key("key_registry03")  # refused: plan limit
    later = chain.rename("key_registry01", "later")  # the same seq, applied
    first, states = _fold([*chain.events[:-1], third, later])
    assert [(a.event_id, a.anomaly) for a in first.anomalies] == [
        (third.event_id, "plan_limit_reached")
    ]
    again, _ = _fold([third, later], states)  # a stale_sequence verdict now, if judged again
    assert again.anomalies == []


def test_restore_folds_the_stored_history_again() -> None:
    chain = _history()
    changes, states = _fold(chain.events)
    refused = frozenset({uuid4()})
    restored = restore(AccountHistory(ACCOUNT, [e.event for e in changes.audit], refused))
    assert restored.ledger == states[ACCOUNT].ledger
    assert restored.applied == {e.seq: e.event_id for e in chain.events}
    assert restored.refused == set(refused)
    assert restore(AccountHistory("acc_new")) == AccountState("acc_new")


def test_a_history_the_fold_refuses_is_a_bug() -> None:
    chain = _history()
    gap = [chain.events[0], *chain.events[2:]]
    with pytest.raises(CorruptHistory, match="stale_sequence"):
        restore(AccountHistory(ACCOUNT, gap))


def test_an_applied_event_re_delivered_writes_its_key_as_it_now_is() -> None:
    """A save that stopped after the audit rows is completed when the take comes again."""
    chain = _history()
    _, states = _fold(chain.events)
    again, _ = _fold([chain.events[1]], states)  # key_registry01 created: now deleted
    assert again.audit == [AuditEntry(chain.events[1], audit_detail(chain.events[1]))]
    assert [(k.key_id, k.status, k.seq) for k in again.keys] == [
        ("key_registry01", KeyStatus.DELETED, 6)
    ]
    ledger = states[ACCOUNT].ledger
    assert ledger is not None
    assert again.accounts == [account_record(ledger)]
