"""Records handed from the event loop to the decode thread while a take is still open.

The loop `put`s each consumed record as it arrives and `close`s the feed when the take
is cut; the planner iterates the feed on the decode thread and blocks until the next
record or the close. So decoding, and writing the blocks already cut, start with the
first record of a take instead of after its last. One producer, one consumer.
"""

from __future__ import annotations

import queue
from collections.abc import Iterable, Iterator

from streams.worker.ingest_plan import SourceRecord


class RecordFeed:
    def __init__(self, records: Iterable[SourceRecord] = ()) -> None:
        self._queue: queue.SimpleQueue[SourceRecord | None] = queue.SimpleQueue()
        for record in records:
            self.put(record)

    def put(self, record: SourceRecord) -> None:
        self._queue.put(record)

    def close(self) -> None:
        """No more records: iteration ends after the ones already put."""
        self._queue.put(None)

    def __iter__(self) -> Iterator[SourceRecord]:
        while (record := self._queue.get()) is not None:
            yield record
