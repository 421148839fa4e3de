"""No plaintext secret anywhere but the create answer: a real worker (its HTTP API, its
projection into chDB, its log), keys made through the HTTP API, the CLI and the key
service, request traffic for them; then every record of every topic, every row of every
ClickHouse table and the whole worker log are searched for every secret made here, and
for any well-formed keypulse secret at all. Zero hits."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import orjson

from infra.clickhouse import make_client
from infra.settings import load_settings
from infra.tools.receivers import free_port
from schemas.key_format import ParsedSecret, check_secret
from schemas.keys import KeyType
from schemas.plans import Plan
from schemas.topics import TopicNames
from streams.client import RecorderConfig, UsageRecorder
from streams.keyservice.commands import CreateKey
from streams.keyservice.service import start_key_service
from tests.eventually import eventually_sync
from tests.faults.worker_process import start_worker, stop, worker_env
from tests.secret_scan import find_secrets, table_bytes, topic_bytes

ACCOUNT = "acc_noplain"
KEYPULSE = Path(sys.executable).parent / "keypulse"


def _cli(env: dict[str, str], *args: str) -> dict[str, object]:
    done = subprocess.run(
        [str(KEYPULSE), *args, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        stdin=subprocess.DEVNULL,
    )
    parsed: dict[str, object] = orjson.loads(done.stdout)
    return parsed


def _secret_of(answer: dict[str, object]) -> str:
    secret = answer.get("secret")
    nested = answer.get("key")
    if secret is None and isinstance(nested, dict):
        secret = nested.get("secret")
    assert isinstance(secret, str) and isinstance(check_secret(secret), ParsedSecret), answer
    return secret


def _ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _exercise_http(base: str, admin: str) -> list[str]:
    """Creates (one retried with its Idempotency-Key), a refusal, rename, revoke, delete."""
    made: list[str] = []
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {admin}"}) as http:
        first = http.post(
            "/api-keys",
            json={"name": "Production web", "type": "live"},
            headers={"Idempotency-Key": "create-web-1"},
        )
        assert first.status_code == 201, first.text
        made.append(first.json()["secret"])
        again = http.post(
            "/api-keys",
            json={"name": "Production web", "type": "live"},
            headers={"Idempotency-Key": "create-web-1"},
        )
        assert again.status_code == 200 and again.json()["secret"] is None
        for name, kind in (("Production api", "live"), ("Staging", "test"), ("Test", "test")):
            created = http.post("/api-keys", json={"name": name, "type": kind})
            assert created.status_code == 201, created.text
            made.append(created.json()["secret"])
        over = http.post("/api-keys", json={"name": "Third live", "type": "live"})
        assert over.status_code == 409 and over.json()["error"] == "plan_limit_reached"
        key_id = first.json()["key_id"]
        assert http.patch(f"/api-keys/{key_id}", json={"name": "Web"}).status_code == 200
        assert http.post(f"/api-keys/{key_id}/revoke", json={"reason": "compromised"}).is_success
        assert http.delete(f"/api-keys/{key_id}").status_code == 204
        refused = http.get("/api-keys", headers={"Authorization": f"Bearer {made[0]}"})
        assert refused.status_code == 401  # the deleted key is refused, and not logged
    return made


def _traffic(bootstrap: str, prefix: str, key_ids: list[str]) -> None:
    topics = TopicNames.with_prefix(prefix)
    recorder = UsageRecorder(RecorderConfig(bootstrap_servers=bootstrap, topic=topics.requests))
    try:
        for i in range(300):
            recorder.record(
                key_id=key_ids[i % len(key_ids)],
                account_id=ACCOUNT,
                method="GET",
                route="/v1/render",
                status=200 if i % 7 else 500,
                latency_ms=10.0 + i % 30,
                client_ip="203.0.113.7",
            )
        recorder.flush(30)
    finally:
        recorder.close()


def test_no_secret_in_any_topic_table_or_log(tmp_path: Path, kafka_bootstrap: str) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}."
    port = free_port()
    env = worker_env(tmp_path / "data", kafka_bootstrap, prefix)
    env |= {"KEYPULSE_API_SERVE_IN_WORKER": "true", "KEYPULSE_API_PORT": str(port)}
    env |= {"KEYPULSE_API_HOST": "127.0.0.1", "COLUMNS": "200"}
    log = tmp_path / "worker.log"
    subprocess.run([str(KEYPULSE), "topics", "ensure"], env=env, check=True, capture_output=True)
    created = _cli(env, "accounts", "create", ACCOUNT, "--plan", "free")
    secrets = [_secret_of(created)]
    worker = start_worker(env, log)
    try:
        base = f"http://127.0.0.1:{port}"
        eventually_sync(lambda: _ready(base), timeout_s=120, what="the worker's API ready")
        secrets += _exercise_http(base, secrets[0])
        secrets.append(
            _secret_of(
                _cli(
                    env,
                    "keys",
                    "create",
                    ACCOUNT,
                    "--name",
                    "Ops reader",
                    "--type",
                    "test",
                    "--access",
                    "read_only",
                )
            )
        )
        topic = TopicNames.with_prefix(prefix).key_events
        with start_key_service(kafka_bootstrap, topic) as service:
            outcome = service.execute(CreateKey(ACCOUNT, "Batch jobs", KeyType.TEST))
            assert outcome.decision.secret is not None
            secrets.append(outcome.decision.secret)
            ledger = service.follower.snapshot(ACCOUNT)
            assert ledger is not None and ledger.plan is Plan.FREE
            key_ids = [k.key_id for k in ledger.keys.values()]
            live_ids = [k.key_id for k in ledger.keys.values() if k.status.value != "deleted"]
        _traffic(kafka_bootstrap, prefix, live_ids)
        admin = {"Authorization": f"Bearer {secrets[0]}"}
        eventually_sync(
            lambda: (
                len(httpx.get(f"{base}/audit-log", headers=admin).json()["data"])
                >= len(ledger.keys) + 3
            ),
            timeout_s=60,
            what="the audit log projected",
        )
        eventually_sync(
            lambda: (
                sum(
                    k["requests_24h"]
                    for k in httpx.get(f"{base}/api-keys", headers=admin).json()["data"]
                )
                == 300
            ),
            timeout_s=60,
            what="the traffic counted",
        )
    finally:
        status = stop(worker)
    assert status == 0, log.read_text()[-3000:]
    assert len(set(secrets)) == 7

    settings = load_settings(_env_file=None, data_dir=tmp_path / "data")
    client = make_client(settings)
    try:
        tables = table_bytes(client)
    finally:
        client.close()
    assert tables[f"{settings.clickhouse.database}.keys"][0] >= len(key_ids)  # versions
    assert tables[f"{settings.clickhouse.database}.key_audit"][0] >= len(key_ids) + 3
    assert tables[f"{settings.clickhouse.database}.requests_raw"][0] == 300
    names = TopicNames.with_prefix(prefix)
    topics = topic_bytes(kafka_bootstrap, [names.key_events, names.requests, names.dead_letters])
    assert topics[names.key_events][0] > len(key_ids)
    places = {**tables, **topics, "worker.log": (0, log.read_bytes())}
    assert places["worker.log"][1], "the worker wrote no log at all"
    hits = {where: find_secrets(data, secrets) for where, (_, data) in places.items()}
    assert {where: found for where, found in hits.items() if found} == {}
    # the scan itself finds a secret where there is one
    assert find_secrets(b"x" + secrets[1].encode() + b"y", secrets) == {secrets[1]}
