"""Plan limits hold exactly under 1,000 concurrent creates from four API processes, with
one of them killed by SIGKILL in the middle, and after `keypulse replay` rebuilt the
projection from the topic.

Truth is taken three ways that do not share code paths: the answers the processes gave
(7 successes, every other `plan_limit_reached`), a fresh follower reading the topic, and
a plain count over the decoded records (no ledger).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from io import StringIO
from pathlib import Path

import orjson
from rich.console import Console

from infra.clickhouse import make_client, migration_context
from infra.tools.replay import run_replay
from projections.migrate import migrate
from schemas.codec import decode_key_event
from schemas.keys import KeyCreated, KeyRevoked
from schemas.plans import Plan
from schemas.topics import TopicNames
from streams.client.key_follower import FollowerConfig, KeyFollower
from streams.keyservice.commands import CreateAccount
from streams.keyservice.service import start_key_service
from streams.worker.kafka_ranges import read_ranges, topic_ranges
from tests.eventually import eventually_sync
from tests.integration.ingest_helpers import worker_settings

REPO = Path(__file__).resolve().parents[3]
ACCOUNT = "acc_storm"
PROCESSES = 4
CREATES_EACH = 250
THREADS = 16


def _start_storm(
    bootstrap: str, topic: str, out_dir: Path
) -> list[tuple[subprocess.Popen[str], Path]]:
    procs = []
    for i in range(PROCESSES):
        out = out_dir / f"answers-{i}.jsonl"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.integration.keyservice.storm",
                bootstrap,
                topic,
                ACCOUNT,
                str(CREATES_EACH),
                str(THREADS),
                str(out),
            ],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        procs.append((proc, out))
    for proc, _ in procs:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
    for proc, _ in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    return procs


def _finish(proc: subprocess.Popen[str], timeout_s: float = 240) -> int:
    """Wait for the process and close its pipes."""
    try:
        return proc.wait(timeout_s)
    finally:
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()


def _answers(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.endswith(b"}")]


def _topic_events(bootstrap: str, topic: str) -> list[object]:
    return [
        decode_key_event(r.value)
        for r in read_ranges(bootstrap, topic, topic_ranges(bootstrap, topic))
    ]


def _active_by_plain_count(events: list[object]) -> Counter[str]:
    """Active keys per type, counted without the ledger: the first event with each seq
    whose prev is the event before it wins; later claims of a seq are ignored."""
    head: tuple[int, object] | None = None
    keys: dict[str, str] = {}
    for e in events:
        if getattr(e, "account_id", None) != ACCOUNT:
            continue
        expected = (0, None) if head is None else head
        if e.seq != expected[0] + 1 or e.prev != expected[1]:  # type: ignore[attr-defined]
            continue
        head = (e.seq, e.event_id)  # type: ignore[attr-defined]
        if isinstance(e, KeyCreated):
            keys[e.key_id] = e.key_type.value
        elif isinstance(e, KeyRevoked):
            keys.pop(e.key_id)
    return Counter(keys.values())


def _follower_view(bootstrap: str, topic: str) -> dict[str, str]:
    follower = KeyFollower(FollowerConfig(bootstrap, topic, client_id="check")).start()
    try:
        follower.wait_ready(30)
        ledger = follower.snapshot(ACCOUNT)
        assert ledger is not None
        return {
            k.key_id: k.key_type.value for k in ledger.keys.values() if k.status.value == "active"
        }
    finally:
        follower.close()


def _create_account(bootstrap: str, topic: str) -> None:
    with start_key_service(bootstrap, topic) as service:
        service.execute(CreateAccount(ACCOUNT, Plan.FREE))


def _check_limits(bootstrap: str, topic: str, answers: list[dict[str, str]]) -> dict[str, str]:
    active = _follower_view(bootstrap, topic)
    assert Counter(active.values()) == {"live": 2, "test": 5}
    assert _active_by_plain_count(_topic_events(bootstrap, topic)) == {"live": 2, "test": 5}
    ok = {a["ok"]: a["type"] for a in answers if "ok" in a}
    assert set(ok.items()) <= set(active.items())  # every success is a key that exists
    errors = Counter(a["error"] for a in answers if "error" in a)
    assert set(errors) <= {"plan_limit_reached"}, errors
    return active


def _replayed_active(tmp_path: Path, bootstrap: str, prefix: str) -> dict[str, str]:
    """`keypulse replay` into a fresh database, then the active keys in its `keys` table."""
    settings = worker_settings(tmp_path / "replay", bootstrap, prefix)
    client = make_client(settings)
    migrate(client, migration_context(settings))  # what a worker's first start does
    client.close()
    result = run_replay(settings, Console(file=StringIO(), width=120))
    # the account, its 7 keys; the rest are events that lost a race, ignored by all
    assert result.key_events - result.key_events_refused == 8
    client = make_client(settings)
    try:
        rows = client.query(
            "SELECT key_id, key_type FROM keys FINAL WHERE account_id = {a:String} "
            "AND status = 'active'",
            parameters={"a": ACCOUNT},
        ).result_rows
    finally:
        client.close()
    return {str(k): str(t) for k, t in rows}


def test_a_thousand_concurrent_creates_on_a_free_account(
    topics: TopicNames, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    _create_account(kafka_bootstrap, topics.key_events)
    procs = _start_storm(kafka_bootstrap, topics.key_events, tmp_path)
    for proc, _ in procs:
        assert _finish(proc) == 0
    answers = [a for _, out in procs for a in _answers(out)]
    assert len(answers) == PROCESSES * CREATES_EACH
    active = _check_limits(kafka_bootstrap, topics.key_events, answers)
    assert Counter(a["type"] for a in answers if "ok" in a) == {"live": 2, "test": 5}
    assert len(active) == 7
    assert _replayed_active(tmp_path, kafka_bootstrap, topic_prefix) == active


def test_limits_hold_when_a_deciding_process_is_killed(
    topics: TopicNames, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    _create_account(kafka_bootstrap, topics.key_events)
    procs = _start_storm(kafka_bootstrap, topics.key_events, tmp_path)
    victim, victim_out = procs[0]
    eventually_sync(
        lambda: len(_answers(victim_out)) >= 1, timeout_s=60, what="the victim's first answer"
    )
    victim.send_signal(signal.SIGKILL)
    assert _finish(victim, 30) == -signal.SIGKILL
    for proc, _ in procs[1:]:
        assert _finish(proc) == 0
    survivors = [a for _, out in procs[1:] for a in _answers(out)]
    assert len(survivors) == (PROCESSES - 1) * CREATES_EACH
    active = _check_limits(kafka_bootstrap, topics.key_events, survivors + _answers(victim_out))
    assert _replayed_active(tmp_path, kafka_bootstrap, topic_prefix) == active
