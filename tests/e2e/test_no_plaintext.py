"""No plaintext secret anywhere but the create answer: a real worker (its HTTP API, its
projection into chDB, its log), keys made through the HTTP API, the CLI and the key
service, request traffic for them; then every record of every topic, every row of every
ClickHouse table and the whole worker log are searched for every secret made here, and
for any well-formed keypulse secret at all. Zero hits.

Channel secrets too: alert rules with webhook signing secrets, Slack bot tokens and a Slack
incoming-webhook URL are made over HTTP and with the CLI (reads show them masked); test
notifications of them are delivered by the worker to a real local receiver (webhook
signatures verified with `standardwebhooks`, the Slack URL's path and tokens as received:
the notifier opened them); `keypulse secrets rotate-master` rewraps them, the old master
key is retired (`infra.secrets_rotation.retire`), and a second round is delivered with the
new key alone. Then every topic of the test's prefix (the worker's own too), every table
and the log hold none of those secrets nor either master key, nor anything shaped like a
plaintext channel secret, while the rules topic does hold their sealed form."""

from __future__ import annotations

import base64
import secrets as random_secrets
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
from standardwebhooks import Webhook

from alerting.channel_secrets import kids_of
from alerting.sealing import parse_keyring
from infra.alert_admin import Publisher, new_webhook_secret, send_test_notification
from infra.clickhouse import make_client
from infra.master_keys import create_keyring_file
from infra.secrets_rotation import read_rules, retire
from infra.settings import Settings, load_settings
from infra.tools.receivers import HttpReceiver, free_port
from schemas.key_format import ParsedSecret, check_secret
from schemas.keys import KeyType
from schemas.plans import Plan
from schemas.topics import TopicNames
from schemas.utc import utc_now
from streams.client import RecorderConfig, UsageRecorder
from streams.keyservice.commands import CreateKey
from streams.keyservice.service import start_key_service
from tests.channel_secret_scan import find_channel_secrets, threaded_receiver
from tests.eventually import eventually_sync
from tests.faults.worker_process import start_worker, stop, worker_env
from tests.secret_scan import find_secrets, table_bytes, topic_bytes

ACCOUNT = "acc_noplain"
KEYPULSE = Path(sys.executable).parent / "keypulse"


def _run(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [str(KEYPULSE), *args],
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, (args[:2], done.stderr[-2000:])
    return done.stdout


def _cli(env: dict[str, str], *args: str) -> dict[str, object]:
    parsed: dict[str, object] = orjson.loads(_run(env, *args, "--json"))
    return parsed


def _secret_of(answer: dict[str, object]) -> str:
    secret = answer.get("secret")
    nested = answer.get("key")
    if secret is None and isinstance(nested, dict):
        secret = nested.get("secret")
    assert isinstance(secret, str) and isinstance(check_secret(secret), ParsedSecret), answer
    return secret


def _all_topics(bootstrap: str, prefix: str) -> list[str]:
    """Every topic of this test's prefix on the broker: the product's and the worker's own
    (faust's changelogs and repartitions), whichever made them."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    try:
        return sorted(t for t in consumer.topics() if t.startswith(prefix))
    finally:
        consumer.close()


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


@dataclass(frozen=True)
class ChannelSecrets:
    api_webhook: str
    cli_webhook: str
    api_token: str
    cli_token: str
    hook_path: str
    """The secret part of the Slack incoming-webhook URL."""

    @classmethod
    def new(cls) -> ChannelSecrets:
        path = f"/services/T{uuid.uuid4().hex[:9]}/B{uuid.uuid4().hex[:9]}/"
        return cls(
            new_webhook_secret(),
            new_webhook_secret(),
            f"xoxb-{uuid.uuid4().hex}",
            f"xoxb-{uuid.uuid4().hex}",
            path + random_secrets.token_hex(12),
        )

    @property
    def all(self) -> list[str]:
        return [self.api_webhook, self.cli_webhook, self.api_token, self.cli_token, self.hook_path]


RULE = {"kind": "request_count", "window_s": "5m", "comparator": "gt", "threshold": 1e9}
"""Never fires: its channels are reached by test notifications only."""


def _rules_with_channel_secrets(
    env: dict[str, str], base: str, admin: str, receiver: HttpReceiver, cs: ChannelSecrets
) -> tuple[str, str]:
    """One rule over HTTP (webhook, Slack incoming webhook, Slack bot), one with the CLI
    (webhook, Slack bot); both read back masked, over HTTP and with the CLI."""
    auth = {"Authorization": f"Bearer {admin}"}
    body = {
        **RULE,
        "name": "Sealed over HTTP",
        "scope": {"type": "account"},
        "channels": [
            {"type": "webhook", "url": receiver.url("/hook-api"), "secret": cs.api_webhook},
            {"type": "slack", "webhook_url": receiver.url(cs.hook_path)},
            {"type": "slack", "bot_token": cs.api_token, "channel": "#ops"},
        ],
    }
    created = httpx.post(f"{base}/alert-rules", json=body, headers=auth, timeout=30)
    assert created.status_code == 202, created.text
    assert find_channel_secrets(created.content, cs.all) == set()
    api_rule = created.json()["rule"]["rule_id"]
    cli_rule = f"rule_cli{uuid.uuid4().hex[:8]}"
    _run(
        env, "rules", "add", "--id", cli_rule, "--account", ACCOUNT, "--name",
        "Sealed from the CLI", "--kind", "request_count", "--window", "5m", "--comparator",
        "gt", "--threshold", "1000000000", "--all-keys", "--webhook-url",
        receiver.url("/hook-cli"), "--webhook-secret", cs.cli_webhook, "--slack-token",
        cs.cli_token, "--slack-channel", "#ops",
    )  # fmt: skip

    def listed() -> dict[str, Any]:
        answer = httpx.get(f"{base}/alert-rules", headers=auth, timeout=10)
        assert find_channel_secrets(answer.content, cs.all) == set()
        return {r["rule_id"]: r for r in answer.json()["data"]}

    eventually_sync(lambda: {api_rule, cli_rule} <= set(listed()), timeout_s=30, what="rules")
    webhook, hook, bot = listed()[api_rule]["channels"]
    assert webhook["secret"] == f"whsec_…{cs.api_webhook[-4:]}"
    assert hook["webhook_url"] == "http://127.0.0.1/…"
    assert bot["bot_token"] == f"xoxb-…{cs.api_token[-4:]}"
    reader = env | {"KEYPULSE_API_TOKEN": admin}  # reads go through the worker's API
    shown: Any = orjson.loads(_run(reader, "rules", "show", cli_rule))
    assert find_channel_secrets(orjson.dumps(shown), cs.all) == set()
    by_type = {c["type"]: c for c in shown["channels"]}
    assert by_type["webhook"]["secret"] == f"whsec_…{cs.cli_webhook[-4:]}"
    assert by_type["slack"]["bot_token"] == f"xoxb-…{cs.cli_token[-4:]}"
    return api_rule, cli_rule


def _send_test_notifications(settings: Settings, rule_ids: list[str], kid: str) -> None:
    """Test notifications of the rules as they are on the topic: sealed under `kid`."""
    rules = read_rules(settings, TopicNames.with_prefix(settings.kafka.topic_prefix).alert_rules)
    with Publisher(settings) as publisher:
        for rule_id in rule_ids:
            rule = rules.rules[rule_id]
            assert kids_of(rule.channels) == {kid}
            send_test_notification(publisher, rule, None, "key_noplaintext", utc_now())


def _delivered(receiver: HttpReceiver, cs: ChannelSecrets, rounds: int) -> bool:
    """Every channel reached `rounds` times, each with its opened secret."""
    got = list(receiver.received)
    hooks = {p: [r for r in got if r.path == p] for p in ("/hook-api", "/hook-cli")}
    for path, secret in (("/hook-api", cs.api_webhook), ("/hook-cli", cs.cli_webhook)):
        for req in hooks[path]:
            payload = Webhook(secret).verify(req.body, req.headers)
            assert payload["data"]["idempotency_key"].startswith("test.")
    tokens = sorted(
        r.headers.get("Authorization", "") for r in got if r.path == "/api/chat.postMessage"
    )
    via_url = [r for r in got if r.path == cs.hook_path]
    return (
        len(hooks["/hook-api"]) >= rounds
        and len(hooks["/hook-cli"]) >= 1
        and len(via_url) >= rounds
        and tokens.count(f"Bearer {cs.api_token}") >= rounds
        and tokens.count(f"Bearer {cs.cli_token}") >= 1
    )


def _rotate(env: dict[str, str], settings: Settings, keyring: Path) -> tuple[str, str]:
    """`keypulse secrets rotate-master`, then retire the old key: (old kid, new kid)."""
    old = parse_keyring(keyring.read_text(), "keyring").current_kid
    report = _cli(env, "secrets", "rotate-master")
    new = str(report["current"])
    assert new != old and report["republished"] == 2, report
    assert (report["secrets_rewrapped"], report["secrets_sealed"]) == (5, 0), report
    assert report["rules_per_key"] == {new: 2}, report
    retire(settings, TopicNames.with_prefix(settings.kafka.topic_prefix).alert_rules, old)
    assert parse_keyring(keyring.read_text(), "keyring").kids == (new,)
    return old, new


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
    keyring = tmp_path / "keys" / "master.keyring"
    env |= {
        "KEYPULSE_SECRETS_MASTER_KEY_FILE": str(keyring),
        "KEYPULSE_ALERTING_ALLOW_LOOPBACK_WEBHOOKS": "true",
        "KEYPULSE_ALERTING_SLACK_ALLOWED_WEBHOOK_HOSTS": '["127.0.0.1"]',
    }
    log = tmp_path / "worker.log"
    subprocess.run([str(KEYPULSE), "topics", "ensure"], env=env, check=True, capture_output=True)
    create_keyring_file(keyring)  # what `keypulse secrets init` does (in-process: faster)
    assert keyring.stat().st_mode & 0o777 == 0o600
    master_keys = [parse_keyring(keyring.read_text(), "keyring").keys[0][1]]
    created = _cli(env, "accounts", "create", ACCOUNT, "--plan", "free")
    secrets = [_secret_of(created)]
    cs = ChannelSecrets.new()
    settings = load_settings(
        _env_file=None,
        data_dir=tmp_path / "data",
        kafka={"bootstrap_servers": kafka_bootstrap, "topic_prefix": prefix},
        secrets={"master_key_file": keyring},
    )
    receiver_cm = threaded_receiver()
    receiver = receiver_cm.__enter__()
    env["KEYPULSE_ALERTING_SLACK_API_BASE_URL"] = receiver.url("/api/")
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
        rule_ids = list(_rules_with_channel_secrets(env, base, secrets[0], receiver, cs))
        first_kid = parse_keyring(keyring.read_text(), "keyring").current_kid
        _send_test_notifications(settings, rule_ids, first_kid)
        eventually_sync(lambda: _delivered(receiver, cs, 1), timeout_s=60, what="delivered")
        _, new_kid = _rotate(env, settings, keyring)
        master_keys.append(parse_keyring(keyring.read_text(), "keyring").keys[0][1])
        _send_test_notifications(settings, rule_ids[:1], new_kid)  # the old key is gone
        eventually_sync(lambda: _delivered(receiver, cs, 2), timeout_s=60, what="rotated")
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
        receiver_cm.__exit__(None, None, None)
    assert status == 0, log.read_text()[-3000:]
    assert len(set(secrets)) == 7

    client = make_client(settings)
    try:
        tables = table_bytes(client)
    finally:
        client.close()
    assert tables[f"{settings.clickhouse.database}.keys"][0] >= len(key_ids)  # versions
    assert tables[f"{settings.clickhouse.database}.key_audit"][0] >= len(key_ids) + 3
    assert tables[f"{settings.clickhouse.database}.requests_raw"][0] == 300
    names = TopicNames.with_prefix(prefix)
    ours = [names.key_events, names.requests, names.dead_letters, names.alert_rules]
    ours.append(names.notifications)
    every_topic = topic_bytes(kafka_bootstrap, _all_topics(kafka_bootstrap, prefix))
    topics = {t: every_topic[t] for t in ours if t in every_topic}  # non-empty ones
    assert topics[names.key_events][0] > len(key_ids)
    places = {**tables, **topics, "worker.log": (0, log.read_bytes())}
    assert places["worker.log"][1], "the worker wrote no log at all"
    hits = {where: find_secrets(data, secrets) for where, (_, data) in places.items()}
    assert {where: found for where, found in hits.items() if found} == {}
    # the scan itself finds a secret where there is one
    assert find_secrets(b"x" + secrets[1].encode() + b"y", secrets) == {secrets[1]}

    # channel secrets and master keys, by value and by shape: every topic of this test's
    # prefix, every table, the log (the session's end scans every topic of the session)
    assert {names.alert_rules, names.notifications, names.requests} <= set(every_topic)
    known: list[str | bytes] = [*cs.all, *master_keys]
    channel_hits = {t: find_channel_secrets(data, known) for t, (_, data) in every_topic.items()}
    channel_hits |= {w: find_channel_secrets(data, known) for w, (_, data) in places.items()}
    assert {where: found for where, found in channel_hits.items() if found} == {}
    rules_topic = topics[names.alert_rules][1]
    assert rules_topic.count(b"kpsealed:v1:" + first_kid.encode()) >= 5  # sealed, not absent
    assert rules_topic.count(b"kpsealed:v1:" + new_kid.encode()) >= 5  # and rewrapped
    assert b"kpsealed:v1:" in tables[f"{settings.clickhouse.database}.deliveries"][1]
    key_b64 = base64.b64encode(master_keys[0]).decode()
    assert find_channel_secrets(f"k:{key_b64}".encode(), known) == {"<32 key bytes>"}
    assert find_channel_secrets(b"x" + cs.hook_path.encode(), known) == {cs.hook_path}
