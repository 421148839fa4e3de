"""A verifier started while Kafka is unreachable says it is not ready (why, too), never
answers "unknown", and becomes ready by itself once the broker can be reached."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from schemas.topics import TopicNames
from streams.client.key_follower import NotReady
from streams.client.verdicts import Verdict
from streams.client.verifier import KeyVerifier
from tests.eventually import eventually_sync
from tests.samples.keys import Chain, publish

pytestmark = pytest.mark.kafka


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    """Copy src to dst until either end closes; each socket is some pipe's src, so each
    is closed once."""
    with contextlib.suppress(OSError):
        while data := src.recv(65536):
            dst.sendall(data)
    for s in (src, dst):
        with contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_RDWR)
    src.close()


@contextmanager
def _forwarding(port: int, to: tuple[str, int]) -> Iterator[None]:
    """Listen on `port` and forward every connection to `to` (the broker)."""
    server = socket.create_server(("127.0.0.1", port), reuse_port=True)
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                client, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection(to)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(a, b), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(2)
        server.close()


def test_a_verifier_started_without_kafka_recovers_when_it_comes(
    kafka_bootstrap: str, topics: TopicNames
) -> None:
    chain = Chain("acc_recover")
    chain.create_key("key_recover01")
    publish(kafka_bootstrap, topics.key_events, chain.events)
    secret = chain.secrets["key_recover01"]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens there once the block ends
    verifier = KeyVerifier.connect(f"127.0.0.1:{port}", topics.key_events)
    try:
        with pytest.raises(NotReady, match="Kafka"):
            verifier.wait_ready(1.5)
        with pytest.raises(NotReady):
            verifier.verify(secret)  # never "unknown" while the state is not read
        host, broker_port = kafka_bootstrap.rsplit(":", 1)
        with _forwarding(port, (host, int(broker_port))):
            eventually_sync(lambda: verifier.ready, 20, "the verifier ready once Kafka answers")
            verdict = verifier.verify(secret)
            assert verdict.verdict is Verdict.VALID and verdict.key_id == "key_recover01"
    finally:
        verifier.close()
