"""Shared fixtures: the real Kafka broker (reused if running, else started for the session)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from infra.clickhouse import make_client, migration_context
from infra.kafka.admin import ensure_topics
from infra.kafka.broker import LocalKafka
from infra.kafka.probe import broker_ready
from infra.settings import KafkaSettings, load_settings
from projections.migrate import migrate
from schemas.topics import TopicNames

TEST_BOOTSTRAP = os.environ.get("KEYPULSE_TEST_BOOTSTRAP", "127.0.0.1:9092")


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap servers of a ready broker: the running one, or one started for the session."""
    if broker_ready(TEST_BOOTSTRAP):
        yield TEST_BOOTSTRAP
        return
    settings = KafkaSettings(bootstrap_servers="127.0.0.1:29092", controller_port=29093)
    broker = LocalKafka(settings, Path(tmp_path_factory.mktemp("kafka")))
    broker.start()
    try:
        yield settings.bootstrap_servers
    finally:
        broker.stop()


@pytest.fixture
def topic_prefix() -> str:
    """A fresh topic prefix so tests never see each other's messages."""
    return f"t{uuid.uuid4().hex[:10]}."


@pytest.fixture
def topics(kafka_bootstrap: str, topic_prefix: str) -> TopicNames:
    """The registry's topics, created under a fresh prefix."""
    ensure_topics(kafka_bootstrap, topic_prefix)
    return TopicNames.with_prefix(topic_prefix)


@pytest.fixture
def chdb_dir(tmp_path: Path) -> Path:
    """A fresh chDB data directory. Tests must close every client they open on it
    (chDB serves one directory per process at a time)."""
    return tmp_path / "clickhouse"


@pytest.fixture
def migrated_client(tmp_path: Path) -> Iterator[Client]:
    """A client on a fresh, fully migrated chDB database under `tmp_path` (closed after)."""
    settings = load_settings(data_dir=tmp_path)
    client = make_client(settings)
    migrate(client, migration_context(settings))
    try:
        yield client
    finally:
        client.close()
