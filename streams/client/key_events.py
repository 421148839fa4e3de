"""`KeyEventPublisher`: one Kafka record per key lifecycle event, keyed by account_id.

A lost lifecycle event is not acceptable, so every record goes through an idempotent
acks=all producer, and `publish(event, wait=True)` returns only once the broker has the
record (its topic, partition and offset) or raises `PublishError` with the cause. With
`wait=False` it returns a `concurrent.futures.Future` that resolves the same way.
The producer is created on first use (a broker outage at construction is not an error)
and closed by `close()` or, at the latest, at interpreter exit.

The key path uses librdkafka (`confluent-kafka`), not kafka-python as the usage recorder
does: its network I/O runs in C threads that do not hold the GIL, so a confirmation is not
queued behind the Python threads of a busy process (see docs/decisions.md). One daemon
thread per publisher serves the delivery reports (`Producer.poll`).
"""

from __future__ import annotations

import atexit
import logging
import threading
import weakref
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Literal, overload

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from schemas.codec import encode
from schemas.keys import KEY_EVENT_TYPES, KeyEventModel


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
    delivery_timeout_ms: int = 30_000
    producer_options: Mapping[str, Any] = field(default_factory=dict)
    """Extra librdkafka settings (e.g. {"linger.ms": 5})."""


def producer_settings(config: PublisherConfig) -> dict[str, Any]:
    """The librdkafka settings of a key-events producer: idempotent, acks=all, no linger."""
    settings: dict[str, Any] = {
        "bootstrap.servers": config.bootstrap_servers,
        "client.id": config.client_id,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 0,
        "message.timeout.ms": config.delivery_timeout_ms,
        "socket.connection.setup.timeout.ms": max(1_000, config.connect_timeout_ms),
        "reconnect.backoff.max.ms": 1_000,
        "socket.nagle.disable": True,
        "log_level": 3,  # errors only, through Python logging (`logger`)
        "logger": logging.getLogger(__name__),
    }
    settings.update(config.producer_options)
    return settings


def _exit_hook(ref: weakref.ref[KeyEventPublisher]) -> Callable[[], None]:
    def hook() -> None:
        publisher = ref()
        if publisher is not None:
            publisher.close(publisher.config.close_timeout_s)

    return hook


class KeyEventPublisher:
    """Publishes the key lifecycle and account events to the key-events topic."""

    def __init__(self, config: PublisherConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._producer: Producer | None = None
        self._poller: threading.Thread | None = None
        self._closed = False
        self._polling = threading.Event()
        self._hook = _exit_hook(weakref.ref(self))
        atexit.register(self._hook)

    def _get_producer(self) -> Producer:
        with self._lock:
            if self._closed:
                raise PublishError("the publisher is closed")
            if self._producer is None:
                producer = Producer(producer_settings(self.config))
                try:  # fail fast, like a bootstrap timeout, when no broker answers
                    producer.list_topics(timeout=self.config.connect_timeout_ms / 1000)
                except KafkaException as exc:
                    producer.purge()
                    raise PublishError(
                        f"Kafka unreachable at {self.config.bootstrap_servers}: {exc}"
                    ) from exc
                self._producer = producer
                self._polling.set()
                self._poller = threading.Thread(
                    target=self._serve_reports,
                    args=(producer,),
                    name="key-events-delivery",
                    daemon=True,
                )
                self._poller.start()
            return self._producer

    def _serve_reports(self, producer: Producer) -> None:
        while self._polling.is_set():
            producer.poll(0.1)

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
        kind = getattr(event, "type", None)
        if kind not in KEY_EVENT_TYPES:
            raise TypeError(f"expected a key lifecycle event, got {type(event).__name__}")
        producer = self._get_producer()
        result: Future[PublishResult] = Future()

        def report(error: KafkaError | None, message: Message) -> None:
            if error is None:
                result.set_result(
                    PublishResult(
                        str(message.topic()),
                        int(message.partition() or 0),
                        int(message.offset() or 0),
                    )
                )
            else:
                result.set_exception(
                    PublishError(f"{kind} {event.event_id} was not confirmed: {error.str()}")
                )

        try:
            producer.produce(
                self.config.topic,
                value=encode(event),
                key=event.account_id.encode(),
                on_delivery=report,
            )
        except (BufferError, KafkaException) as exc:
            raise PublishError(f"{kind} {event.event_id} was not sent: {exc!r}") from exc
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
        """Wait up to `timeout` s for unconfirmed events, then close the producer; events
        still unconfirmed then fail with `PublishError`."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            atexit.unregister(self._hook)
            producer, self._producer = self._producer, None
            poller, self._poller = self._poller, None
        if producer is not None:
            left = producer.flush(self.config.close_timeout_s if timeout is None else timeout)
            if left:
                producer.purge()
                producer.flush(1.0)  # serves the purge reports: their futures fail
        self._polling.clear()
        if poller is not None:
            poller.join(1.0)

    def __enter__(self) -> KeyEventPublisher:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
