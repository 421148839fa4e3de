"""A local spill area for encoded batches that Kafka could not take (yet).

Layout: `spill_dir/.lock` (an exclusive `flock` held while a store is open: one process per
directory) and numbered segment files `spill-<seq>.bin`. A segment is a sequence of
records, each `>IIHI` (value length, event count, key length, CRC32 of key+value) followed
by the key and the value. Appends go to the open segment, which is flushed to the OS after
every record (and fsync'd when asked) and rotated once it exceeds `segment_bytes`. Replay
reads closed segments oldest first; the caller deletes a segment only after every record
in it was acknowledged by Kafka or appended again. A torn tail (a crash mid-append) is
detected by length or CRC and skipped with the rest of that segment.

Not thread-safe: one thread (the recorder's worker) owns a store.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

_HEADER = struct.Struct(">IIHI")
_PREFIX = "spill-"
_SUFFIX = ".bin"


class SpillError(Exception):
    """The spill directory cannot be used (locked by another process, or not writable)."""


@dataclass(frozen=True, slots=True)
class SpilledBatch:
    key: bytes | None
    value: bytes
    count: int


@dataclass(frozen=True, slots=True)
class Segment:
    path: Path
    batches: list[SpilledBatch]

    @property
    def events(self) -> int:
        return sum(b.count for b in self.batches)


def _seq(path: Path) -> int:
    return int(path.name[len(_PREFIX) : -len(_SUFFIX)])


class SpillStore:
    """Append-only segments of spilled batches under one directory."""

    def __init__(self, directory: Path, segment_bytes: int = 16 * 1024 * 1024, fsync: bool = False):
        self.directory = directory
        self._segment_bytes = segment_bytes
        self._fsync = fsync
        directory.mkdir(parents=True, exist_ok=True)
        self._lock_file: BinaryIO | None = (directory / ".lock").open("ab")
        try:
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            self._lock_file.close()
            self._lock_file = None
            raise SpillError(f"spill directory {directory} is in use by another process") from exc
        existing = sorted(self._segment_paths(), key=_seq)
        self._next_seq = _seq(existing[-1]) + 1 if existing else 1
        self._current: BinaryIO | None = None
        self._current_path: Path | None = None
        self._current_size = 0
        self.pending_events = sum(self._count_events(p) for p in existing)

    def _segment_paths(self) -> list[Path]:
        return [
            p
            for p in self.directory.glob(f"{_PREFIX}*{_SUFFIX}")
            if p.name[len(_PREFIX) : -len(_SUFFIX)].isdigit()
        ]

    def _count_events(self, path: Path) -> int:
        return sum(b.count for b in self._read(path))

    # -- writing -------------------------------------------------------------------------
    def append(self, key: bytes | None, value: bytes, count: int) -> None:
        """Append one batch to the open segment (opening or rotating it as needed)."""
        if self._current is None or self._current_size >= self._segment_bytes:
            self.rotate()
            path = self.directory / f"{_PREFIX}{self._next_seq:08d}{_SUFFIX}"
            self._next_seq += 1
            self._current = path.open("ab")
            self._current_path = path
            self._current_size = 0
        k = key or b""
        header = _HEADER.pack(len(value), count, len(k), zlib.crc32(value, zlib.crc32(k)))
        self._current.write(header + k)
        self._current.write(value)
        self._current.flush()
        if self._fsync:
            os.fsync(self._current.fileno())
        self._current_size += _HEADER.size + len(k) + len(value)
        self.pending_events += count

    def rotate(self) -> None:
        """Close the open segment so that it can be replayed."""
        if self._current is not None:
            self._current.close()
            self._current = None
            self._current_path = None

    # -- replay --------------------------------------------------------------------------
    def closed_segments(self) -> list[Path]:
        """Segments not open for appending, oldest first."""
        return sorted(
            (p for p in self._segment_paths() if p != self._current_path),
            key=_seq,
        )

    def load(self, path: Path) -> Segment:
        return Segment(path=path, batches=list(self._read(path)))

    def remove(self, segment: Segment) -> None:
        """Delete a replayed segment whose batches were all resolved."""
        segment.path.unlink(missing_ok=True)
        self.pending_events = max(0, self.pending_events - segment.events)

    @staticmethod
    def _read(path: Path) -> Iterator[SpilledBatch]:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return
        pos = 0
        while pos + _HEADER.size <= len(data):
            vlen, count, klen, crc = _HEADER.unpack_from(data, pos)
            start = pos + _HEADER.size
            end = start + klen + vlen
            if end > len(data):
                return
            key = data[start : start + klen]
            value = data[start + klen : end]
            if zlib.crc32(value, zlib.crc32(key)) != crc:
                return
            yield SpilledBatch(key=key or None, value=value, count=count)
            pos = end

    def close(self) -> None:
        self.rotate()
        if self._lock_file is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None
