"""The spill store: length-prefixed batches in segments, torn tails, one owner."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.client.spill import SpillError, SpillStore


def test_append_rotate_replay_remove(tmp_path: Path) -> None:
    store = SpillStore(tmp_path, segment_bytes=64)
    store.append(b"key_abc123", b"x" * 40, 3)  # 68 bytes with its header: segment full
    store.append(None, b"y" * 40, 4)  # opens segment 2
    store.append(None, b"z", 1)
    assert store.pending_events == 8
    assert [p.name for p in store.closed_segments()] == ["spill-00000001.bin"]
    store.rotate()
    segments = store.closed_segments()
    assert len(segments) == 2
    first = store.load(segments[0])
    assert [(b.key, b.value, b.count) for b in first.batches] == [(b"key_abc123", b"x" * 40, 3)]
    second = store.load(segments[1])
    assert [(b.key, b.count) for b in second.batches] == [(None, 4), (None, 1)]
    store.remove(first)
    assert store.pending_events == 5
    assert not segments[0].exists()
    store.close()


def test_reopening_counts_pending_events(tmp_path: Path) -> None:
    store = SpillStore(tmp_path)
    store.append(None, b"a" * 10, 7)
    store.append(b"k", b"b" * 10, 5)
    store.close()
    again = SpillStore(tmp_path)
    assert again.pending_events == 12
    again.append(None, b"c", 1)  # appends go to a new segment, never the old one
    assert len(list(tmp_path.glob("spill-*.bin"))) == 2
    again.close()


def test_torn_tail_is_ignored(tmp_path: Path) -> None:
    store = SpillStore(tmp_path)
    store.append(None, b"a" * 100, 2)
    store.append(None, b"b" * 100, 3)
    store.close()
    (segment,) = tmp_path.glob("spill-*.bin")
    data = segment.read_bytes()
    segment.write_bytes(data[:-10])
    again = SpillStore(tmp_path)
    assert again.pending_events == 2
    again.close()
    corrupted = bytearray(data)
    corrupted[20] ^= 0xFF
    segment.write_bytes(bytes(corrupted))
    third = SpillStore(tmp_path)
    assert third.pending_events == 0
    third.close()


def test_one_owner_per_directory(tmp_path: Path) -> None:
    store = SpillStore(tmp_path)
    with pytest.raises(SpillError, match="in use"):
        SpillStore(tmp_path)
    store.close()
    SpillStore(tmp_path).close()
