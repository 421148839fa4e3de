"""Fixtures for producer tests that need a broker address nobody answers on."""

from __future__ import annotations

import gc
import socket
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="module")
def silent_bootstrap() -> Iterator[str]:
    """host:port of a socket that listens but never accepts: connections hang, then time out.

    A refused port would do too, but kafka-python 3.0.12 never closes the socket of a
    refused connection attempt (kafka/net/inet.py, KafkaNetSocket.connect), and the
    garbage collector's ResourceWarning would then fail some later test.
    """
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4096)
        yield f"127.0.0.1:{listener.getsockname()[1]}"
    gc.collect()
