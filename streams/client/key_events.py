"""`KeyEventPublisher`: one Kafka record per key lifecycle event, keyed by account_id.

A lost lifecycle event is not acceptable, so every record goes through an idempotent
acks=all producer, and `publish(event, wait=True)` returns only once the broker has the
record (its topic, partition and offset) or raises `PublishError` with the cause. With
`wait=False` it returns a `concurrent.futures.Future` that resolves the same way.
The producer is created on first use (a broker outage at construction is not an error)
and closed by `close()` or, at the latest, at interpreter exit.
"""

from __future__ import annotations

import atexit
import threading
import weakref
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Literal, overload

from schemas.codec import encode
from schemas.keys import KEY_EVENT_TYPES, KeyEventModel
from streams.client.kafka_client import build_producer, close_producer


class PublishError(Exception):
    """A lifecycle event was not confirmed by Kafka (unreachable, timed out or rejected)."""


@dataclass(frozen=True)
class PublishResult:
    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class PublisherConfig:
    bootstrap_servers: str
    topic: str
    client_id: str = "keypulse-key-events"
    connect_timeout_ms: int = 5_000
    close_timeout_s: float = 10.0
    producer_options: Mapping[str, Any] = field(default_factory=dict)


def _exit_hook(ref: weakref.ref[KeyEventPublisher]) -> Callable[[], None]:
    def hook() -> None:
        publisher = ref()
        if publisher is not None:
            publisher.close(publisher.config.close_timeout_s)

    return hook


class KeyEventPublisher:
    """Publishes `KeyCreated`/`KeyRenamed`/`KeyRevoked`/`KeyDeleted` to the key-events topic."""

    def __init__(self, config: PublisherConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._producer: Any = None
        self._closed = False
        self._hook = _exit_hook(weakref.ref(self))
        atexit.register(self._hook)

    def _get_producer(self) -> Any:
        from kafka.errors import KafkaError

        with self._lock:
            if self._closed:
                raise PublishError("the publisher is closed")
            if self._producer is None:
                options = {"bootstrap_timeout_ms": self.config.connect_timeout_ms}
                options.update(self.config.producer_options)
                try:
                    self._producer = build_producer(
                        self.config.bootstrap_servers, self.config.client_id, None, options
                    )
                except (KafkaError, OSError) as exc:
                    raise PublishError(
                        f"Kafka unreachable at {self.config.bootstrap_servers}: {exc!r}"
                    ) from exc
                atexit.unregister(self._hook)  # run before kafka-python's own hook (LIFO)
                atexit.register(self._hook)
            return self._producer

    @overload
    def publish(
        self, event: KeyEventModel, wait: Literal[True] = ..., timeout: float = ...
    ) -> PublishResult: ...

    @overload
    def publish(
        self, event: KeyEventModel, wait: Literal[False], timeout: float = ...
    ) -> Future[PublishResult]: ...

    def publish(
        self, event: KeyEventModel, wait: bool = True, timeout: float = 10.0
    ) -> PublishResult | Future[PublishResult]:
        """Send one event keyed by its account_id; see the module docstring for `wait`."""
        from kafka.errors import KafkaError

        kind = getattr(event, "type", None)
        if kind not in KEY_EVENT_TYPES:
            raise TypeError(f"expected a key lifecycle event, got {type(event).__name__}")
        producer = self._get_producer()
        try:
            future = producer.send(
                self.config.topic, value=encode(event), key=event.account_id.encode()
            )
        except KafkaError as exc:
            raise PublishError(f"{kind} {event.event_id} was not sent: {exc!r}") from exc
        result: Future[PublishResult] = Future()

        def done(metadata: Any) -> None:
            result.set_result(PublishResult(metadata.topic, metadata.partition, metadata.offset))

        def failed(exc: BaseException) -> None:
            result.set_exception(
                PublishError(f"{kind} {event.event_id} was not confirmed: {exc!r}")
            )

        future.add_callback(done)
        future.add_errback(failed)
        if not wait:
            return result
        try:
            return result.result(timeout)
        except TimeoutError as exc:
            raise PublishError(
                f"{kind} {event.event_id} not confirmed within {timeout} s "
                "(it may still be delivered; the event_id makes a retry safe to deduplicate)"
            ) from exc

    def close(self, timeout: float | None = None) -> None:
        """Wait up to `timeout` s for unconfirmed events, then close the producer."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            atexit.unregister(self._hook)
            producer, self._producer = self._producer, None
        if producer is not None:
            close_producer(producer, self.config.close_timeout_s if timeout is None else timeout)

    def __enter__(self) -> KeyEventPublisher:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
