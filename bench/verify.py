"""Verifier benchmark: `python -m bench.verify` prints one JSON object as its last line.

On a fresh topic prefix: 100,000 valid `key.created` events for 10 accounts published
directly, then

- `snapshot_write_ms`: a `KeyStateWriter` (as every API process runs one) writing the
  key-state snapshot of those accounts once, as it does at its first cut;
- `verifier_ready_ms`: `KeyVerifier.connect` (with the key-state topic) to ready: the
  snapshot loaded and the key events after it folded; `replay_ready_ms`: the same
  without the snapshot (every event decoded and folded), for comparison;
- `verify_p50_us`, `verify_p99_us`, `verifies_per_s`: `verify` in-process on the warm
  verifier, random keys of the 100,000; `baseline_p50_us`: a bare `hashlib.sha256` of
  the secret plus a dict lookup, in the same run;
- `verify_with_outcomes_p50_us`, `verify_with_outcomes_p99_us`: the same with every
  verdict recorded by an `OutcomeRecorder` (as `POST /verify` does);
- `revoke_propagation_p99_ms`, `revoke_propagation_max_ms`, `create_propagation_p99_ms`:
  3 verifier processes (`bench.verify_process`); the time from the key service's answer
  (`execute` returned) to each process seeing the change (`time.time()`, one machine's
  clock); 50 revokes and 50 creates, every process's sample pooled;
- `http_verify_rps`, `http_verify_p99_ms`: `POST /verify` on the worker's HTTP API
  (`keypulse worker`), 8 client threads on keep-alive connections for 5 s.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from bench.keys import _free_port, _percentile, _wait_ready
from bench.verify_process import VerifierProcess
from infra.kafka.admin import ensure_topics
from schemas.key_format import generate_secret, hash_secret, hint, new_key_id
from schemas.keys import AccountCreated, KeyCreated, KeyEventModel, KeyType, RevokeReason
from schemas.plans import Plan
from schemas.topics import TopicNames
from streams.client.key_events import KeyEventPublisher, PublisherConfig
from streams.client.key_follower import FollowerConfig, KeyFollower
from streams.client.key_state_writer import KeyStateWriter, WriterConfig
from streams.client.outcome_recorder import OutcomeRecorder
from streams.client.recorder_config import RecorderConfig
from streams.client.verifier import KeyVerifier
from streams.keyservice.commands import CreateAccount, CreateKey, RevokeKey
from streams.keyservice.service import start_key_service

ACCOUNTS = 10
PROCESSES = 3
SERVICE_ACCOUNT = "acc_benchverifysvc"
TOKEN = "bench-verify-service-token"


def _events(total: int) -> tuple[list[KeyEventModel], list[str]]:
    events: list[KeyEventModel] = []
    secrets: list[str] = []
    per_account = total // ACCOUNTS
    for a in range(ACCOUNTS):
        account = f"acc_benchverify{a:02d}"
        head: KeyEventModel = AccountCreated(
            account_id=account, seq=1, prev=None, plan=Plan.ENTERPRISE
        )
        events.append(head)
        for i in range(per_account):
            secret = generate_secret("test" if i % 4 == 0 else "live")
            secrets.append(secret)
            head = KeyCreated(
                account_id=account,
                seq=head.seq + 1,
                prev=head.event_id,
                key_id=new_key_id(),
                name=f"bench key {i}",
                key_type=KeyType.TEST if i % 4 == 0 else KeyType.LIVE,
                secret_hash=hash_secret(secret),
                hint=hint(secret),
            )
            events.append(head)
    return events, secrets


def _publish(bootstrap: str, topic: str, events: list[KeyEventModel]) -> None:
    config = PublisherConfig(
        bootstrap, topic, client_id="bench-verify", producer_options={"linger.ms": 20}
    )
    with KeyEventPublisher(config) as publisher:
        pending = [publisher.publish(e, wait=False) for e in events]
        for future in pending:
            future.result(60)


def _in_process(verifier: KeyVerifier, secrets: list[str], n: int) -> dict[str, float]:
    sample = random.choices(secrets, k=n)
    for secret in sample[:10_000]:  # warm
        verifier.verify(secret)
    took: list[int] = []
    start = time.perf_counter()
    for secret in sample:
        t = time.perf_counter_ns()
        verifier.verify(secret)
        took.append(time.perf_counter_ns() - t)
    wall = time.perf_counter() - start
    table = {hash_secret(s): s for s in secrets}
    base: list[int] = []
    for secret in sample:
        t = time.perf_counter_ns()
        table.get("sha256:" + hashlib.sha256(secret.encode()).hexdigest())
        base.append(time.perf_counter_ns() - t)
    return {
        "verify_p50_us": round(statistics.median(took) / 1000, 2),
        "verify_p99_us": round(_percentile([float(x) for x in took], 0.99) / 1000, 2),
        "verifies_per_s": round(n / wall),
        "baseline_p50_us": round(statistics.median(base) / 1000, 2),
    }


def _seen(procs: list[VerifierProcess], secret: str, until: str, answered: float) -> list[float]:
    for proc in procs:
        proc.send({"watch": secret, "until": until, "tag": until})
    for proc in procs:
        assert proc.next() == {"watching": until}
    return [max(0.0, proc.next(10)["at"] - answered) * 1000 for proc in procs]


def _propagation(bootstrap: str, topics: TopicNames, rounds: int) -> dict[str, float]:
    procs = [
        VerifierProcess(bootstrap, topics.key_events, topics.render_counts)
        for _ in range(PROCESSES)
    ]
    revokes: list[float] = []
    creates: list[float] = []
    try:
        for proc in procs:
            proc.next(120)
        with start_key_service(bootstrap, topics.key_events, ready_timeout_s=120) as service:
            service.execute(CreateAccount(SERVICE_ACCOUNT, Plan.ENTERPRISE), actor="bench")
            for i in range(rounds):
                outcome = service.execute(
                    CreateKey(SERVICE_ACCOUNT, f"bench propagation {i}", KeyType.LIVE),
                    actor="bench",
                )
                answered = time.time()
                key_id, secret = outcome.decision.key_id, outcome.decision.secret
                assert key_id is not None and secret is not None
                creates += _seen(procs, secret, "valid", answered)
                for proc in procs:  # watching before the revoke is decided
                    proc.send({"watch": secret, "until": "revoked", "tag": "revoked"})
                for proc in procs:
                    assert proc.next() == {"watching": "revoked"}
                service.execute(
                    RevokeKey(SERVICE_ACCOUNT, key_id, RevokeReason.USER_REQUEST), actor="bench"
                )
                answered = time.time()
                revokes += [max(0.0, proc.next(10)["at"] - answered) * 1000 for proc in procs]
    finally:
        for proc in procs:
            proc.close()
    return {
        "revoke_propagation_p99_ms": round(_percentile(revokes, 0.99), 2),
        "revoke_propagation_max_ms": round(max(revokes), 2),
        "create_propagation_p99_ms": round(_percentile(creates, 0.99), 2),
    }


def _start_worker(data_dir: Path, prefix: str, port: int, bootstrap: str) -> Any:
    """`keypulse worker` serving the HTTP API with the bench's /verify service token."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYPULSE_")} | {
        "KEYPULSE_DATA_DIR": str(data_dir),
        "KEYPULSE_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "KEYPULSE_KAFKA_TOPIC_PREFIX": prefix,
        "KEYPULSE_API_HOST": "127.0.0.1",
        "KEYPULSE_API_PORT": str(port),
        "KEYPULSE_API_VERIFY_TOKENS": json.dumps([hash_secret(TOKEN)]),
    }
    log = open(data_dir / "worker.log", "wb")  # noqa: SIM115 - the child holds it
    return subprocess.Popen(
        [sys.executable, "-m", "infra.cli", "worker"], env=env, stdout=log, stderr=log, cwd=data_dir
    )


def _http(bootstrap: str, prefix: str, secrets: list[str], seconds: float) -> dict[str, float]:
    data_dir = Path(tempfile.mkdtemp(prefix="bench-verify-"))
    port = _free_port()
    worker = _start_worker(data_dir, prefix, port, bootstrap)
    base = f"http://127.0.0.1:{port}"
    latencies: list[float] = []
    lock = threading.Lock()
    try:
        _wait_ready(base, 300)
        stop = time.monotonic() + seconds

        def client() -> None:
            mine: list[float] = []
            headers = {"Authorization": f"Bearer {TOKEN}"}
            with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
                while time.monotonic() < stop:
                    body = {"key": random.choice(secrets), "client_ip": "203.0.113.7"}
                    t = time.perf_counter()
                    response = http.post("/verify", json=body)
                    mine.append(time.perf_counter() - t)
                    assert response.status_code == 200, response.text
            with lock:
                latencies.extend(mine)

        threads = [threading.Thread(target=client) for _ in range(8)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - start
    finally:
        worker.terminate()
        worker.wait(30)
    return {
        "http_verify_rps": round(len(latencies) / wall),
        "http_verify_p99_ms": round(_percentile(latencies, 0.99) * 1000, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--verifies", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--http-seconds", type=float, default=5.0)
    args = parser.parse_args()
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    ensure_topics(args.bootstrap, prefix)
    topics = TopicNames.with_prefix(prefix)
    events, secrets = _events(args.keys)
    _publish(args.bootstrap, topics.key_events, events)
    result: dict[str, Any] = {"keys": len(secrets)}
    start = time.perf_counter()
    replaying = KeyFollower(FollowerConfig(args.bootstrap, topics.key_events)).start()
    replaying.wait_ready(300)
    result["replay_ready_ms"] = round((time.perf_counter() - start) * 1000, 1)
    writer = KeyStateWriter(replaying, WriterConfig(args.bootstrap, topics.key_state))
    start = time.perf_counter()
    if not writer.write_cut():
        raise SystemExit("the key-state snapshot was not written (see the log above)")
    result["snapshot_write_ms"] = round((time.perf_counter() - start) * 1000, 1)
    writer.close()
    replaying.close()
    start = time.perf_counter()
    verifier = KeyVerifier.connect(
        args.bootstrap, topics.key_events, topics.render_counts, key_state_topic=topics.key_state
    )
    try:
        verifier.wait_ready(120)
        result["verifier_ready_ms"] = round((time.perf_counter() - start) * 1000, 1)
        result |= _in_process(verifier, secrets, args.verifies)
        # the same, recording every verdict as the HTTP app does (OutcomeRecorder)
        outcomes = OutcomeRecorder(RecorderConfig(args.bootstrap, topics.requests))
        recording = KeyVerifier(verifier.follower, outcomes=outcomes)
        with_outcomes = _in_process(recording, secrets, args.verifies // 2)
        outcomes.close()
        result["verify_with_outcomes_p50_us"] = with_outcomes["verify_p50_us"]
        result["verify_with_outcomes_p99_us"] = with_outcomes["verify_p99_us"]
    finally:
        verifier.close()
    result |= _propagation(args.bootstrap, topics, args.rounds)
    result |= _http(args.bootstrap, prefix, secrets, args.http_seconds)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
