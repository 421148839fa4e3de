"""Three verifier processes on one key-events topic: a new key and a revocation reach all
of them within 1 s (measured exactly by `bench.verify`), the render quota holds within
the stated bound across them, and a verifier whose broker is unreachable says not ready
rather than "unknown"."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator

import pytest

from bench.verify_process import VerifierProcess
from schemas.key_format import generate_secret
from schemas.keys import KeyType
from schemas.topics import TopicNames
from tests.samples.keys import Chain, publish

PROCESSES = 3
RENDER_RATE = 100.0
"""Renders per second each process attempts in the quota test."""
STALENESS_S = 0.5
"""What a process may not yet know of the others' renders: one publish interval (0.1 s)
plus propagation, with margin for a loaded test machine."""


@pytest.fixture
def setup(
    kafka_bootstrap: str, topics: TopicNames
) -> Iterator[tuple[Chain, list[VerifierProcess]]]:
    chain = Chain("acc_verifyprocs")
    chain.create_key("key_test01", key_type=KeyType.TEST)
    publish(kafka_bootstrap, topics.key_events, chain.events)
    procs = [
        VerifierProcess(kafka_bootstrap, topics.key_events, topics.render_counts)
        for _ in range(PROCESSES)
    ]
    try:
        for proc in procs:
            assert "ready_ms" in proc.next(60)
        yield chain, procs
    finally:
        for proc in procs:
            proc.close()


def _propagation(
    procs: list[VerifierProcess], secret: str, until: str, change: Callable[[], None]
) -> float:
    """Seconds from the change's publication being confirmed to the last process seeing it."""
    for proc in procs:
        proc.send({"watch": secret, "until": until, "tag": until})
        assert proc.next() == {"watching": until}
    change()
    confirmed = time.time()
    seen = [proc.next(5) for proc in procs]
    assert all(s["seen"] == until for s in seen), seen
    return max(s["at"] for s in seen) - confirmed


def test_create_and_revoke_reach_every_process(
    kafka_bootstrap: str, topics: TopicNames, setup: tuple[Chain, list[VerifierProcess]]
) -> None:
    chain, procs = setup
    created = chain.create_key("key_new001")
    secret = chain.secrets["key_new001"]
    took = _propagation(
        procs, secret, "valid", lambda: publish(kafka_bootstrap, topics.key_events, [created])
    )
    assert took < 1.0, f"a new key took {took:.3f} s to verify everywhere"
    revoked = chain.revoke("key_new001")
    took = _propagation(
        procs, secret, "revoked", lambda: publish(kafka_bootstrap, topics.key_events, [revoked])
    )
    assert took < 1.0, f"a revocation took {took:.3f} s to reach every process"


def test_quota_across_three_processes(setup: tuple[Chain, list[VerifierProcess]]) -> None:
    chain, procs = setup
    for proc in procs:
        proc.send({"renders": chain.secrets["key_test01"], "n": 100, "interval_s": 1 / RENDER_RATE})
    admitted = [proc.next(30)["admitted"] for proc in procs]
    total = sum(admitted)
    # the bound: each process may admit what the others admitted in the last STALENESS_S
    bound = (PROCESSES - 1) * RENDER_RATE * STALENESS_S
    assert 100 <= total <= 100 + bound, (admitted, bound)
    assert all(a < 100 for a in admitted), admitted  # each saw the others' renders


def test_unreachable_broker_is_not_ready_never_unknown() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed when the block ends: nothing listens there
    proc = VerifierProcess(f"127.0.0.1:{port}", "t.key-events", "t.render-counts", "--no-wait")
    try:
        assert proc.next() == {"started": True}
        deadline = time.monotonic() + 2.0  # past the first connection attempts
        probes = 0
        while time.monotonic() < deadline or probes < 2:
            proc.send({"probe": generate_secret("live")})
            answer = proc.next()
            assert answer["ready"] is False and answer["verdict"] is None, answer
            assert answer["not_ready"]
            probes += 1
    finally:
        proc.close()
