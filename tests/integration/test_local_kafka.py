"""The local broker's lifecycle and the CLI's one-line errors, against real processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from infra.kafka.broker import BrokerError, LocalKafka, broker_running
from infra.kafka.probe import broker_ready
from infra.settings import KafkaSettings

pytestmark = pytest.mark.kafka


def _keypulse(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infra.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
        check=False,
    )


def _java_pids(properties: Path) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if b"kafka.Kafka" in cmdline and str(properties).encode() in cmdline:
            pids.append(int(proc.name))
    return pids


def test_start_twice_is_safe_and_stop_leaves_no_process(tmp_path: Path) -> None:
    settings = KafkaSettings(bootstrap_servers="127.0.0.1:29192", controller_port=29193)
    broker = LocalKafka(settings, tmp_path)
    with broker_running(settings, tmp_path) as lease:
        assert lease.origin == "started" and lease.started
        assert "kafka started" in lease.describe()  # what the Makefile looks for
        assert broker_ready(settings.bootstrap_servers)
        first_pid = broker.status().pid
        assert first_pid is not None
        with broker_running(settings, tmp_path) as again:
            assert again.origin == "ours" and not again.started
        assert broker.status().pid == first_pid, "the inner exit must not stop the broker"
        assert _java_pids(broker.properties) == [first_pid]
    assert _java_pids(broker.properties) == []
    assert broker.status().pid is None
    assert not broker.stop()


def test_a_broker_that_answers_is_used_and_left_running(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    port = int(kafka_bootstrap.rpartition(":")[2])
    settings = KafkaSettings(bootstrap_servers=kafka_bootstrap, controller_port=port + 1)
    with broker_running(settings, tmp_path) as lease:
        assert lease.origin == "external" and not lease.started
        assert "not ours" in lease.describe()
    assert not (tmp_path / "kafka.pid").exists(), "no broker of ours was started"
    assert broker_ready(kafka_bootstrap)


def test_port_in_use_is_one_clear_error(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        broker = LocalKafka(KafkaSettings(bootstrap_servers=f"127.0.0.1:{port}"), tmp_path)
        with pytest.raises(BrokerError, match="already in use"):
            broker.start()
        result = _keypulse(
            "kafka",
            "start",
            env={
                "KEYPULSE_DATA_DIR": str(tmp_path),
                "KEYPULSE_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}",
            },
        )
    assert result.returncode == 1
    assert "already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_malformed_dsn_is_one_clear_error(tmp_path: Path) -> None:
    result = _keypulse(
        "migrate",
        env={"KEYPULSE_DATA_DIR": str(tmp_path), "KEYPULSE_CLICKHOUSE_DSN": "postgres://x"},
    )
    assert result.returncode == 1
    assert "KEYPULSE_CLICKHOUSE_DSN" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_broker_is_one_clear_error(tmp_path: Path) -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    result = _keypulse(
        "topics",
        "ensure",
        env={
            "KEYPULSE_DATA_DIR": str(tmp_path),
            "KEYPULSE_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}",
        },
    )
    assert result.returncode == 1
    assert "no Kafka broker reachable" in result.stderr
    assert "Traceback" not in result.stderr


def test_replication_beyond_the_brokers_is_one_clear_error(
    tmp_path: Path, kafka_bootstrap: str, topic_prefix: str
) -> None:
    result = _keypulse(
        "topics",
        "ensure",
        env={
            "KEYPULSE_DATA_DIR": str(tmp_path),
            "KEYPULSE_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "KEYPULSE_KAFKA_TOPIC_PREFIX": f"{topic_prefix}rf3.",
            "KEYPULSE_KAFKA_REPLICATION_FACTOR": "3",
            "KEYPULSE_KAFKA_MIN_INSYNC_REPLICAS": "2",
        },
    )
    assert result.returncode == 1
    assert "replication factor 3 needs 3 brokers" in result.stderr
    assert "--brokers 3" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow  # three JVMs: `make test-faults`
def test_a_three_broker_cluster_starts_reports_and_stops_only_itself(
    tmp_path: Path, kafka_bootstrap: str, topic_prefix: str
) -> None:
    from infra.kafka.admin import describe_replicas
    from schemas.topics import KEY_EVENTS
    from tests.faults.cluster_support import free_base_port

    base = free_base_port(6)
    env = {
        "KEYPULSE_DATA_DIR": str(tmp_path),
        "KEYPULSE_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{base}",
        "KEYPULSE_KAFKA_CONTROLLER_PORT": str(base + 1),
        "KEYPULSE_KAFKA_BROKER_HEAP": "320m",
    }
    servers = ",".join(f"127.0.0.1:{base + i}" for i in (0, 2, 4))
    started = _keypulse("kafka", "start", "--brokers", "3", env=env)
    try:
        assert started.returncode == 0, started.stderr
        assert f"export KEYPULSE_KAFKA_BOOTSTRAP_SERVERS={servers}\n" in started.stdout
        assert "export KEYPULSE_KAFKA_REPLICATION_FACTOR=3\n" in started.stdout
        assert "export KEYPULSE_KAFKA_MIN_INSYNC_REPLICAS=2\n" in started.stdout
        status = _keypulse("kafka", "status", env=env)
        assert status.returncode == 0 and "3 of 3 node(s) running" in status.stdout
        nodes = [tmp_path / "kafka" / f"node-{i}" / "server.properties" for i in (1, 2, 3)]
        assert all(len(_java_pids(p)) == 1 for p in nodes)
        cluster_env = {
            "KEYPULSE_DATA_DIR": str(tmp_path),
            "KEYPULSE_KAFKA_BOOTSTRAP_SERVERS": servers,
            "KEYPULSE_KAFKA_TOPIC_PREFIX": topic_prefix,
            "KEYPULSE_KAFKA_REPLICATION_FACTOR": "3",
            "KEYPULSE_KAFKA_MIN_INSYNC_REPLICAS": "2",
        }
        ensured = _keypulse("topics", "ensure", env=cluster_env)
        assert ensured.returncode == 0, ensured.stderr
        parts = describe_replicas(servers, [KEY_EVENTS.name(topic_prefix)])
        assert len(parts) == KEY_EVENTS.partitions
        assert all(len(p.replicas) == 3 and len(p.isr) == 3 for p in parts)
    finally:
        stopped = _keypulse("kafka", "stop", env=env)
    assert "kafka cluster stopped (3 node(s))" in stopped.stdout
    assert all(_java_pids(p) == [] for p in nodes)
    assert _keypulse("kafka", "status", env=env).returncode == 3
    assert broker_ready(kafka_bootstrap), "the shared broker must keep running"
