from __future__ import annotations

from pathlib import Path

import pytest

from infra.settings import ConfigError, load_settings


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Settings tests see only the variables they set (and no .env file)."""
    import os

    for name in list(os.environ):
        if name.startswith("KEYPULSE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_defaults_use_chdb_under_the_data_dir() -> None:
    settings = load_settings(data_dir=Path("/var/tmp/kp"))
    assert settings.clickhouse_dsn == "chdb:///var/tmp/kp/clickhouse"
    assert settings.kafka.bootstrap_servers == "127.0.0.1:9092"


def test_nested_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEYPULSE_KAFKA_BOOTSTRAP_SERVERS", "a:1, b:2")
    monkeypatch.setenv("KEYPULSE_KAFKA_TOPIC_PREFIX", "staging.")
    monkeypatch.setenv("KEYPULSE_CLICKHOUSE_DSN", "https://ch.example:8443")
    monkeypatch.setenv("KEYPULSE_WORKER_BATCH_MAX_EVENTS", "1000")
    settings = load_settings()
    assert settings.kafka.bootstrap_servers == "a:1,b:2"
    assert settings.kafka.topic_prefix == "staging."
    assert settings.clickhouse_dsn == "https://ch.example:8443"
    assert settings.worker.batch_max_events == 1000


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("KEYPULSE_CLICKHOUSE_DSN", "mysql://db"),
        ("KEYPULSE_CLICKHOUSE_DSN", "chdb://"),
        ("KEYPULSE_CLICKHOUSE_DSN", "http://:8123"),
        ("KEYPULSE_KAFKA_BOOTSTRAP_SERVERS", "localhost"),
        ("KEYPULSE_KAFKA_BOOTSTRAP_SERVERS", "host:99999"),
        ("KEYPULSE_WORKER_BATCH_MAX_EVENTS", "zero"),
        ("KEYPULSE_KAFKA_TOPIC_PREFIX", "bad prefix!"),
    ],
)
def test_invalid_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert variable in message
    assert "\n" not in message
