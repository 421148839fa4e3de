"""Kafka readiness: a real Metadata round trip (API key 3, v0), never a fixed sleep.

Written against the wire protocol so a refused or half-open connection costs one
closed socket and nothing else (client libraries leak sockets when bootstrap fails).
"""

from __future__ import annotations

import logging
import socket
import struct
from collections.abc import Iterator
from contextlib import contextmanager

_METADATA_API_KEY = 3
_CLIENT_ID = b"keypulse-probe"


@contextmanager
def quiet_kafka_logs() -> Iterator[None]:
    """kafka-python logs every refused connection at ERROR; callers that expect refusals."""
    logger = logging.getLogger("kafka")
    previous = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(previous)


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise ConnectionError("connection closed during the metadata response")
        chunks += chunk
    return bytes(chunks)


def metadata_broker_count(host: str, port: int, timeout_s: float = 2.0) -> int:
    """Brokers listed in a Metadata v0 response from host:port (raises OSError if none)."""
    correlation_id = 7
    header = struct.pack(">hhih", _METADATA_API_KEY, 0, correlation_id, len(_CLIENT_ID))
    body = struct.pack(">i", 0)  # v0: an empty topic list asks for cluster metadata
    request = header + _CLIENT_ID + body
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        sock.sendall(struct.pack(">i", len(request)) + request)
        (size,) = struct.unpack(">i", _recv_exact(sock, 4))
        payload = _recv_exact(sock, size)
    got_id, brokers = struct.unpack(">ii", payload[:8])
    if got_id != correlation_id:
        raise ConnectionError("metadata response for another request")
    return int(brokers)


def broker_ready(bootstrap_servers: str, timeout_ms: int = 2000) -> bool:
    """True when some bootstrap server answers Metadata with at least one live broker."""
    for server in bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            if metadata_broker_count(host, int(port), timeout_ms / 1000) > 0:
                return True
        except (OSError, ValueError, struct.error):
            continue
    return False
