"""Kafka readiness: a real metadata round trip, never a fixed sleep."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def quiet_kafka_logs() -> Iterator[None]:
    """kafka-python logs every refused connection at ERROR; a probe expects refusals."""
    logger = logging.getLogger("kafka")
    previous = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(previous)


def broker_ready(bootstrap_servers: str, timeout_ms: int = 2000) -> bool:
    """True when a metadata request returns at least one unfenced broker."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    with quiet_kafka_logs():
        try:
            admin = KafkaAdminClient(
                bootstrap_servers=bootstrap_servers,
                request_timeout_ms=timeout_ms,
                client_id="keypulse-probe",
            )
        except (KafkaError, OSError, ValueError):
            return False
        try:
            cluster = admin.describe_cluster()
        except (KafkaError, OSError, ValueError):
            return False
        finally:
            admin.close()
    brokers = cluster.get("brokers") or []
    return any(not b.get("is_fenced", False) for b in brokers)
