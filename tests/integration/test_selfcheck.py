"""`keypulse up --check` through the real broker, worker and chDB: the self-check counts
its batch, and its key comes from the key service once and is reused after."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from rich.console import Console

from infra.tools.selfcheck import SELFCHECK_ACCOUNT, SELFCHECK_KEY_NAME, run_selfcheck
from schemas.key_ledger import KeyStatus
from schemas.topics import TopicNames
from streams.client.key_follower import FollowerConfig, KeyFollower
from tests.integration.ingest_helpers import worker_settings

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]


def test_selfcheck_reuses_its_key(
    tmp_path: Path, kafka_bootstrap: str, topics: TopicNames, topic_prefix: str
) -> None:
    settings = worker_settings(tmp_path, kafka_bootstrap, topic_prefix)
    screen = StringIO()
    for _ in range(2):
        run_selfcheck(settings, Console(file=screen, width=200), events=200)
    assert screen.getvalue().count("self-check ok: 200 events produced") == 2

    follower = KeyFollower(FollowerConfig(kafka_bootstrap, topics.key_events))
    follower.start()
    try:
        follower.wait_ready(30)
        ledger = follower.snapshot(SELFCHECK_ACCOUNT)
    finally:
        follower.close()
    assert ledger is not None and ledger.seq == 2, "the account and one key, nothing more"
    (key,) = ledger.keys.values()
    assert (key.name, key.status, key.created_by) == (
        SELFCHECK_KEY_NAME,
        KeyStatus.ACTIVE,
        "selfcheck",
    )
