"""Building and closing kafka-python producers with keypulse's delivery guarantees.

Every producer is idempotent with acks=all; `api_version` is left to negotiation.
`build_producer` closes the network client itself when the constructor fails (kafka-python
leaves its selector and sockets open when the bootstrap times out). `close_producer`
works around kafka-python 3.0.x: `KafkaProducer.close(timeout)` first
calls `flush(timeout)`, which raises `KafkaTimeoutError` when records are undeliverable
(broker down) and leaves the I/O thread running; here the sender is then force-closed,
which fails the pending futures, and the producer closed for good.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError
from kafka.net.compat import KafkaNetClient

log = logging.getLogger(__name__)


def build_producer(
    bootstrap_servers: str,
    client_id: str,
    compression: str | None,
    options: Mapping[str, Any],
) -> Any:
    """An idempotent acks=all `KafkaProducer` (may raise `KafkaError` when unreachable)."""
    config: dict[str, Any] = {
        "bootstrap_servers": bootstrap_servers,
        "client_id": client_id,
        "enable_idempotence": True,
        "acks": "all",
        "compression_type": compression,
        "linger_ms": 0,
        "reconnect_backoff_max_ms": 1_000,
        "max_block_ms": 5_000,
    }
    config.update(options)
    clients: list[Any] = []

    def client_factory(**kwargs: Any) -> Any:
        client = KafkaNetClient(**kwargs)
        clients.append(client)
        return client

    config.setdefault("kafka_client", client_factory)
    try:
        return KafkaProducer(**config)
    except BaseException:
        for client in clients:
            with contextlib.suppress(Exception):
                client.close()
        raise


def close_producer(producer: Any, timeout_s: float) -> None:
    """Close `producer`, waiting at most about `timeout_s` for pending records."""
    try:
        producer.close(timeout=timeout_s)
    except KafkaError:
        sender = getattr(producer, "_sender", None)
        if sender is not None:
            sender.force_close()
            sender.join(5.0)
        with contextlib.suppress(KafkaError):
            producer.close(timeout=0)
