"""A stale writer (one that decided on an old state: a lagging process, or a handler that
lost its partition but still runs) appends events that no reader applies, and a key
service that lost such a race decides again on the state that won."""

from __future__ import annotations

import pytest

from schemas.codec import decode_key_event
from schemas.key_format import generate_secret, new_key_id
from schemas.key_ledger import AccountLedger
from schemas.keys import KeyCreated, KeyType
from schemas.plans import Plan
from schemas.topics import TopicNames
from schemas.utc import utc_now
from schemas.uuid7 import uuid7
from streams.client.key_follower import FollowerConfig, KeyFollower
from streams.keyservice.commands import (
    CommandRefused,
    Context,
    CreateAccount,
    CreateKey,
    RevokeKey,
    decide,
)
from streams.keyservice.service import start_key_service
from streams.worker.kafka_ranges import read_ranges, topic_ranges
from tests.samples.keys import publish

ACCOUNT = "acc_stale"


def _ctx() -> Context:
    return Context(utc_now(), "key_stalewriter1", None, uuid7, new_key_id, generate_secret)


def _fresh_view(bootstrap: str, topic: str) -> AccountLedger:
    follower = KeyFollower(FollowerConfig(bootstrap, topic, client_id="fresh")).start()
    try:
        follower.wait_ready(30)
        ledger = follower.snapshot(ACCOUNT)
        assert ledger is not None
        return ledger
    finally:
        follower.close()


def _summary(ledger: AccountLedger) -> tuple[object, ...]:
    keys = sorted((k.key_id, k.name, k.status.value) for k in ledger.keys.values())
    return (ledger.plan, ledger.seq, ledger.head, tuple(keys))


def test_events_decided_on_an_old_state_change_nothing(
    topics: TopicNames, kafka_bootstrap: str
) -> None:
    topic = topics.key_events
    with start_key_service(kafka_bootstrap, topic) as service:
        service.execute(CreateAccount(ACCOUNT, Plan.FREE))
        first = service.execute(CreateKey(ACCOUNT, "Production web", KeyType.LIVE))
        stale = service.follower.snapshot(ACCOUNT)
        assert stale is not None
        service.execute(CreateKey(ACCOUNT, "Production api", KeyType.LIVE))
        assert first.decision.key_id is not None
        service.execute(RevokeKey(ACCOUNT, first.decision.key_id))
        before = _summary(service.follower.snapshot(ACCOUNT))  # type: ignore[arg-type]
        # The stale writer decides on seq 2: a third live key (over the Free limit of 2 by
        # now) and a revoke of a key the live state still has active.
        stale_events = decide(stale, CreateKey(ACCOUNT, "Stale", KeyType.LIVE), _ctx()).events
        copy = stale.copy()
        second_view = decide(copy, RevokeKey(ACCOUNT, first.decision.key_id), _ctx()).events
        publish(kafka_bootstrap, topic, [*stale_events, *second_view])
        service.follower.sync(10)
        assert _summary(service.follower.snapshot(ACCOUNT)) == before  # type: ignore[arg-type]
    assert _summary(_fresh_view(kafka_bootstrap, topic)) == before
    on_topic = [
        decode_key_event(r.value)
        for r in read_ranges(kafka_bootstrap, topic, topic_ranges(kafka_bootstrap, topic))
    ]
    stale_ids = {e.event_id for e in stale_events + second_view}
    assert stale_ids <= {e.event_id for e in on_topic}  # they are there, and ignored
    stale_key = next(e for e in stale_events if isinstance(e, KeyCreated))
    assert stale_key.key_id not in _fresh_view(kafka_bootstrap, topic).keys


def test_a_writer_that_lost_the_race_decides_again(
    topics: TopicNames, kafka_bootstrap: str
) -> None:
    topic = topics.key_events
    with (
        start_key_service(kafka_bootstrap, topic) as winner,
        start_key_service(kafka_bootstrap, topic, client_id="lagging") as lagging,
    ):
        winner.execute(CreateAccount(ACCOUNT, Plan.FREE))
        lagging.follower.sync(10)
        old = lagging.follower.snapshot(ACCOUNT)
        winner.execute(CreateKey(ACCOUNT, "Production web", KeyType.LIVE))
        winner.execute(CreateKey(ACCOUNT, "Production api", KeyType.LIVE))
        real_snapshot = lagging.follower.snapshot
        calls = []

        def lagging_snapshot(account_id: str) -> AccountLedger | None:
            calls.append(account_id)
            return old.copy() if len(calls) == 1 and old is not None else real_snapshot(account_id)

        lagging.follower.snapshot = lagging_snapshot  # type: ignore[method-assign]
        with pytest.raises(CommandRefused) as refused:
            lagging.execute(CreateKey(ACCOUNT, "Third live", KeyType.LIVE))
        assert refused.value.code == "plan_limit_reached"
        assert lagging.lost_races == 1 and len(calls) >= 2
    fresh = _fresh_view(kafka_bootstrap, topic)
    assert sorted(k.name for k in fresh.keys.values()) == ["Production api", "Production web"]
