"""`UsageRecorder` with no broker: callers never block; events are spilled or counted."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from schemas.codec import decode_requests
from streams.client import RecorderConfig, SpillError, UsageRecorder
from streams.client.spill import SpillStore
from tests.samples.streams import REQUEST

EVENT: dict[str, Any] = REQUEST


MakeConfig = Callable[..., RecorderConfig]


@pytest.fixture
def config(silent_bootstrap: str) -> MakeConfig:
    def make(**overrides: Any) -> RecorderConfig:
        base: dict[str, Any] = {
            "bootstrap_servers": silent_bootstrap,
            "topic": "t.keypulse.requests",
            "connect_timeout_ms": 200,
            "reconnect_backoff_ms": 100,
            "linger_ms": 5,
        }
        return RecorderConfig(**{**base, **overrides})

    return make


def test_unreachable_kafka_spills_everything(config: MakeConfig, tmp_path: Path) -> None:
    recorder = UsageRecorder(config(spill_dir=tmp_path))
    for _ in range(20_000):
        recorder.record(**EVENT)
    assert not recorder.flush(0.5)
    stats = recorder.close(1.0)
    assert (stats.recorded, stats.sent, stats.dropped, stats.queued) == (20_000, 0, 0, 0)
    assert stats.spilled == stats.spill_pending == 20_000
    store = SpillStore(tmp_path)
    ids: set[str] = set()
    for path in store.closed_segments():
        for batch in store.load(path).batches:
            decoded = decode_requests(batch.value)
            assert decoded.count == batch.count
            assert batch.key == b"key_abc123"
            ids.update(decoded.columns["event_id"])
    store.close()
    assert len(ids) == 20_000


def test_without_spilling_events_are_dropped_and_counted(config: MakeConfig) -> None:
    recorder = UsageRecorder(config(max_buffered_events=1_000, max_in_flight_events=500))
    for _ in range(5_000):
        recorder.record(**EVENT)
    during = recorder.stats()
    assert during.recorded == 5_000
    assert during.dropped >= 3_500
    stats = recorder.close(0.2)
    assert (stats.recorded, stats.sent, stats.dropped, stats.queued) == (5_000, 0, 5_000, 0)


def test_record_after_close_is_dropped_not_raised(config: MakeConfig) -> None:
    recorder = UsageRecorder(config())
    recorder.close(0.1)
    recorder.record(**EVENT)
    stats = recorder.stats()
    assert (stats.recorded, stats.dropped) == (1, 1)
    assert recorder.close() == stats  # idempotent


def test_spill_dir_has_one_owner(config: MakeConfig, tmp_path: Path) -> None:
    with (
        UsageRecorder(config(spill_dir=tmp_path, close_timeout_s=0.1)),
        pytest.raises(SpillError),
    ):
        UsageRecorder(config(spill_dir=tmp_path))


def test_previous_spill_is_counted_as_pending(config: MakeConfig, tmp_path: Path) -> None:
    first = UsageRecorder(config(spill_dir=tmp_path))
    for _ in range(10):
        first.record(**EVENT)
    first.close(0.5)
    second = UsageRecorder(config(spill_dir=tmp_path))
    assert second.stats().spill_pending == 10
    assert second.close(0.1).spill_pending == 10


@pytest.mark.parametrize("bad", [{"max_batch_events": 0}, {"linger_ms": -1}, {"topic": ""}])
def test_config_is_checked(config: MakeConfig, bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        config(**bad)
