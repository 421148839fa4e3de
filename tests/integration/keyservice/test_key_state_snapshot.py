"""A follower started from the key-state snapshot holds exactly what a follower replaying
every key event holds, picks up the events written after the snapshot, and a key service
keeps the snapshot up to date by itself."""

from __future__ import annotations

import pytest

from schemas.key_ledger import AccountLedger
from schemas.keys import KeyType, RevokeReason
from schemas.plans import Plan
from schemas.topics import TopicNames
from streams.client.key_follower import FollowerConfig, KeyFollower
from streams.client.key_state_writer import KeyStateWriter, WriterConfig
from streams.keyservice.commands import (
    CommandRefused,
    CreateAccount,
    CreateKey,
    RenameKey,
    RevokeKey,
)
from streams.keyservice.service import ServiceConfig, start_key_service
from tests.eventually import eventually_sync

pytestmark = pytest.mark.kafka


def _view(ledger: AccountLedger | None) -> tuple[object, ...]:
    assert ledger is not None
    keys = sorted((k.key_id, k.name, k.status.value, k.secret_hash) for k in ledger.keys.values())
    return (ledger.plan, ledger.seq, ledger.head, dict(ledger.active), tuple(keys))


def _follower(bootstrap: str, topics: TopicNames, snapshot: bool) -> KeyFollower:
    state = topics.key_state if snapshot else None
    config = FollowerConfig(bootstrap, topics.key_events, client_id="snap", state_topic=state)
    follower = KeyFollower(config).start()
    follower.wait_ready(30)
    return follower


def test_a_follower_starts_from_the_snapshot_and_reads_on_after_it(
    topics: TopicNames, kafka_bootstrap: str
) -> None:
    accounts = ["acc_snapone", "acc_snaptwo", "acc_snapthree"]
    with start_key_service(kafka_bootstrap, topics.key_events) as service:
        for account in accounts:
            service.execute(CreateAccount(account, Plan.BUSINESS))
            for i in range(5):
                service.execute(CreateKey(account, f"key {i}", KeyType.LIVE))
        writer = KeyStateWriter(service.follower, WriterConfig(kafka_bootstrap, topics.key_state))
        assert writer.write_cut()
        assert writer.records == 3 * 2  # a header and one chunk per account
        writer.close()
        # after the snapshot: changes the snapshot does not hold
        ledger = service.follower.snapshot(accounts[0])
        assert ledger is not None
        first, second = sorted(ledger.keys)[:2]
        service.execute(RenameKey(accounts[0], first, "renamed after the snapshot"))
        service.execute(RevokeKey(accounts[0], second, RevokeReason.COMPROMISED))
        service.execute(CreateAccount("acc_snapfour", Plan.FREE))
        service.execute(CreateKey("acc_snapfour", "new after the snapshot", KeyType.TEST))

    replayed = _follower(kafka_bootstrap, topics, snapshot=False)
    started = _follower(kafka_bootstrap, topics, snapshot=True)
    try:
        progress = started.progress()
        assert progress.from_snapshot == 3  # the three accounts the cut held
        assert progress.applied == 4  # only the events after the snapshot were folded
        assert replayed.progress().applied == 3 * 6 + 4
        assert started.accounts() == replayed.accounts() == sorted([*accounts, "acc_snapfour"])
        for account in started.accounts():
            assert _view(started.snapshot(account)) == _view(replayed.snapshot(account))
        renamed = started.snapshot(accounts[0])
        assert renamed is not None and renamed.keys[first].name == "renamed after the snapshot"
        for record in renamed.keys.values():
            assert started.key_by_hash(record.secret_hash) == record
    finally:
        started.close()
        replayed.close()


def test_a_key_service_on_a_snapshot_decides_as_on_a_replay(
    topics: TopicNames, kafka_bootstrap: str
) -> None:
    """Plan limits hold for a service whose follower started from the snapshot."""
    often = ServiceConfig(state_interval_s=0.1)
    with start_key_service(
        kafka_bootstrap, topics.key_events, often, state_topic=topics.key_state, write_state=True
    ) as service:
        service.execute(CreateAccount("acc_snaplimit", Plan.FREE))
        for i in range(2):
            service.execute(CreateKey("acc_snaplimit", f"live {i}", KeyType.LIVE))
        writer = service.state_writer
        assert writer is not None
        seq = 3  # the account and its two keys

        def written() -> bool:
            probe = _follower(kafka_bootstrap, topics, snapshot=True)
            try:
                ledger = probe.snapshot("acc_snaplimit")
                return (
                    probe.progress().from_snapshot == 1 and ledger is not None and ledger.seq == seq
                )
            finally:
                probe.close()

        eventually_sync(written, 20, "the service's own writer has the account in the snapshot")
    config = ServiceConfig(answer_timeout_s=10)
    with start_key_service(
        kafka_bootstrap, topics.key_events, config, state_topic=topics.key_state
    ) as again:
        assert again.follower.progress().from_snapshot == 1
        with pytest.raises(CommandRefused) as refused:
            again.execute(CreateKey("acc_snaplimit", "a third live key", KeyType.LIVE))
        assert refused.value.code == "plan_limit_reached"
