"""The key registry agent: lifecycle events -> `keys` via the pure `reduce_key`.

Versions are source offsets (an account's events share one partition, so a key's
events are ordered), which makes re-delivery and replay write identical rows.
Transient store failures (per `store_transient`) are retried with backoff; any other
error ends the agent through `on_bug` (by default `stop_on_bug`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from schemas.codec import KeyEventModel, decode_key_event
from schemas.runtime.dead_letters import DeadLetterSink, decode_or_dead_letter
from schemas.runtime.retry import IsTransient, io_failure, off_loop_until_done
from streams.worker.failures import stop_on_bug
from streams.worker.key_registry import reduce_key
from streams.worker.ports import AnomalyRecord, KeyState, KeyStore

log = logging.getLogger(__name__)


def apply_key_events(
    current: dict[str, KeyState], events: list[tuple[int, KeyEventModel]]
) -> tuple[list[KeyState], list[AnomalyRecord]]:
    """Fold (offset, event) pairs into `current`; return changed states and anomalies."""
    changed: dict[str, KeyState] = {}
    anomalies: list[AnomalyRecord] = []
    for offset, event in events:
        outcome = reduce_key(current.get(event.key_id), event, version=offset)
        if outcome.changed and outcome.state is not None:
            current[event.key_id] = outcome.state
            changed[event.key_id] = outcome.state
        if outcome.anomaly is not None:
            anomalies.append(
                AnomalyRecord(
                    account_id=event.account_id,
                    key_id=event.key_id,
                    event_id=event.event_id,
                    event_type=event.type,
                    anomaly=outcome.anomaly,
                    detail=outcome.detail,
                    occurred_at=event.occurred_at,
                    version=offset,
                )
            )
    return list(changed.values()), anomalies


class KeysAgent:
    def __init__(
        self,
        topic: str,
        store: KeyStore,
        dead_letters: DeadLetterSink,
        store_transient: IsTransient = io_failure,
        on_bug: Callable[[str, BaseException], None] = stop_on_bug,
    ) -> None:
        self._topic = topic
        self._store = store
        self._dlq = dead_letters
        self._store_transient = store_transient
        self._on_bug = on_bug
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ch-keys")
        self.processed = 0  # lifecycle events decoded and folded into the registry
        self.written = 0  # key rows written
        self.anomalies = 0

    async def _blocking(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await off_loop_until_done(
            self._executor, fn, *args, logger=log, transient=self._store_transient
        )

    async def run(self, stream: Any) -> None:
        """The faust agent body (concurrency 1); a non-transient error goes to `on_bug`."""
        try:
            async for events in stream.take_events(500, 0.2):
                await self.process_events(events)
        except Exception as exc:
            self._on_bug("key registry agent", exc)
            raise

    async def process_events(self, events: Sequence[Any]) -> None:
        decoded: list[tuple[int, KeyEventModel]] = []
        for e in events:
            msg = e.message
            event = await decode_or_dead_letter(msg, decode_key_event, self._topic, self._dlq)
            if event is not None:
                decoded.append((msg.offset, event))
        if not decoded:
            return
        current = await self._blocking(self._store.load, [ev.key_id for _, ev in decoded])
        states, anomalies = apply_key_events(current, decoded)
        await self._blocking(self._store.save, states, anomalies)
        self.processed += len(decoded)
        self.written += len(states)
        self.anomalies += len(anomalies)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
