"""Drive `keypulse worker` as a real subprocess, and watch its consumer group's progress."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from kafka import KafkaConsumer, TopicPartition

from tests.eventually import eventually_sync


def worker_env(data_dir: Path, bootstrap: str, prefix: str, **extra: object) -> dict[str, str]:
    env = {
        **os.environ,
        "KEYPULSE_DATA_DIR": str(data_dir),
        "KEYPULSE_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "KEYPULSE_KAFKA_TOPIC_PREFIX": prefix,
        "KEYPULSE_KAFKA_CONSUMER_GROUP": f"{prefix}worker",
        "KEYPULSE_KAFKA_SESSION_TIMEOUT_S": "6",
        "KEYPULSE_CLICKHOUSE_CHDB_MAX_MEMORY_MB": "2048",
        "KEYPULSE_API_SERVE_IN_WORKER": "false",
    }
    env.update({f"KEYPULSE_{k.upper()}": str(v) for k, v in extra.items()})
    return env


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "infra.cli", "worker"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


def kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def stop(proc: subprocess.Popen[bytes], timeout_s: float = 60) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)
        raise


def group_lag(bootstrap: str, group: str, topic: str) -> int:
    """Records of `topic` not yet committed by `group` (end offset - committed offset)."""
    # A consumer with the group id reads the group's commits without joining the group.
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in parts]
        ends = consumer.end_offsets(tps)
        lag = 0
        for tp in tps:
            done = consumer.committed(tp) or 0
            lag += max(0, ends[tp] - done)
        return lag
    finally:
        consumer.close()


def wait_caught_up(
    bootstrap: str, group: str, topic: str, proc: subprocess.Popen[bytes], timeout_s: float
) -> None:
    """Wait until `group` committed every record of `topic`; fail at once if `proc` exits."""

    def caught_up() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited with {proc.returncode}")
        lag = group_lag(bootstrap, group, topic)
        assert lag == 0, f"lag {lag}"
        return True

    eventually_sync(caught_up, timeout_s, "the worker to commit every record", interval_s=0.5)
