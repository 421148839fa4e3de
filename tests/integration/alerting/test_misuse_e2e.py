"""End to end: a revoked key and an expired (rolled) key still presented, and one client
IP presenting many bad keys. The verdicts go through the verifier's `OutcomeRecorder`,
Kafka and the worker into `verification_outcomes`; the real evaluator's account-wide
`stale_key_presented` rule fires once per key and its `credential_stuffing` rule once for
the stuffing IP, and a real local webhook receiver gets signed notifications whose
evidence names the key, its revocation or expiry, the count and the last client IP, or
the IP, its distinct bad keys and their verdicts. The replacement key, presented validly,
and an IP below the stuffing threshold notify nobody."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook

from alerting.detectors.stale_keys import evidence_text
from alerting.ports import StalePresentations
from infra import alert_admin
from infra.clickhouse import make_client
from infra.settings import Settings
from infra.tools.receivers import start_http
from infra.wiring import running_worker
from schemas.keys import RevokeReason
from schemas.plans import Plan
from schemas.requests import presented_digest
from schemas.topics import TopicNames
from streams.client.outcome_recorder import OutcomeRecorder
from streams.client.recorder_config import RecorderConfig
from tests.eventually import eventually
from tests.integration.alerting.alert_e2e_support import alert_settings
from tests.samples.alerting import SECRET
from tests.samples.keys import Chain, publish

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]

ACCOUNT = "acc_stale"
REVOKED, ROLLED, NEW = "key_stale00001", "key_stale00002", "key_stale00003"
RULE = "rule_stale_keys"
STUFFING_RULE = "rule_stuffing"
STUFFER, QUIET = "203.0.113.66", "203.0.113.77"
UNKNOWN = [f"pk_live_{i:030d}wrong!" for i in range(12)]
"""Twelve distinct unknown strings: the stuffer presents them all (with the revoked key:
13 distinct bad keys); QUIET presents three of them and the new key validly."""


def registered(settings: Settings) -> int:
    client = make_client(settings)
    try:
        rows = client.query(
            "SELECT count() FROM keys FINAL WHERE account_id = {a:String}",
            parameters={"a": ACCOUNT},
        ).result_rows
    finally:
        client.close()
    return int(rows[0][0])


async def test_stale_keys_and_stuffing_notify_with_the_evidence(
    tmp_path: Path, kafka_bootstrap: str, topics: TopicNames, topic_prefix: str
) -> None:
    hook = await start_http()
    recorder = OutcomeRecorder(
        RecorderConfig(kafka_bootstrap, topics.requests, linger_ms=5), count_flush_ms=200
    )
    try:
        await _scenario(
            tmp_path, kafka_bootstrap, topics, topic_prefix, hook.url("/hook"), recorder
        )
        webhook = Webhook(SECRET)
        payloads = [webhook.verify(r.body, r.headers) for r in hook.received]
    finally:
        recorder.close(5)
        await hook.stop()
    _check(payloads)


EXPECTED: dict[str, StalePresentations] = {}


async def _scenario(
    tmp_path: Path,
    bootstrap: str,
    topics: TopicNames,
    prefix: str,
    hook_url: str,
    recorder: OutcomeRecorder,
) -> None:
    settings = alert_settings(tmp_path, bootstrap, prefix)
    rule = alert_admin.build_rule(
        {
            "rule_id": RULE,
            "account_id": ACCOUNT,
            "name": "Stale keys in use",
            "scope": {"type": "account"},
            "kind": "stale_key_presented",  # threshold 1, window 15m by default
            "channels": [{"type": "webhook", "url": hook_url, "secret": SECRET}],
        }
    )
    stuffing = alert_admin.build_rule(
        {
            "rule_id": STUFFING_RULE,
            "account_id": ACCOUNT,
            "name": "Credential stuffing",
            "scope": {"type": "account"},
            "kind": "credential_stuffing",  # threshold 10, window 15m by default
            "channels": [{"type": "webhook", "url": hook_url, "secret": SECRET}],
        }
    )
    await asyncio.to_thread(alert_admin.check_rule_urls, rule, settings)
    await asyncio.to_thread(alert_admin.publish_rule, settings, rule)
    await asyncio.to_thread(alert_admin.publish_rule, settings, stuffing)
    chain = Chain(ACCOUNT, Plan.PRO)
    chain.create_key(REVOKED, "Production web")
    chain.create_key(ROLLED, "Batch job")
    revoked = chain.revoke(REVOKED, RevokeReason.COMPROMISED)
    rolled = chain.roll(ROLLED, NEW, timedelta(0))
    await asyncio.to_thread(publish, bootstrap, topics.key_events, chain.events)

    async with running_worker(settings) as worker:
        parts = worker.alerting
        assert parts is not None and parts.evaluator is not None
        evaluator = parts.evaluator
        await eventually(
            lambda: {RULE, STUFFING_RULE} <= set(evaluator.rules), 30, "the rules in the evaluator"
        )

        async def all_registered() -> bool:
            return await asyncio.to_thread(registered, settings) == 3

        await eventually(all_registered, 30, "the three keys in the registry")

        now = datetime.now(UTC).replace(microsecond=0)
        verdicts = [
            *(("revoked", REVOKED, "198.51.100.7", now - timedelta(seconds=s)) for s in (40, 5)),
            ("revoked", REVOKED, "203.0.113.8", now - timedelta(seconds=20)),
            ("expired", ROLLED, "2001:db8::5", now - timedelta(seconds=3)),
            *(("valid", NEW, "192.0.2.1", now - timedelta(seconds=s)) for s in range(10)),
        ]
        for outcome, key, ip, at in verdicts:
            recorder.record(outcome, key, ACCOUNT, ip, at)
        recorder.record("revoked", REVOKED, ACCOUNT, STUFFER, now - timedelta(seconds=30))
        for i, presented in enumerate(UNKNOWN):
            at = now - timedelta(seconds=29 - i)
            recorder.record("unknown", None, None, STUFFER, at, presented_digest(presented))
        for presented in UNKNOWN[:3]:
            digest = presented_digest(presented)
            recorder.record("unknown", None, None, QUIET, now, digest)
        recorder.record("valid", NEW, ACCOUNT, QUIET, now)
        assert await asyncio.to_thread(recorder.flush, 20)
        EXPECTED[REVOKED] = StalePresentations(
            4, 0, now - timedelta(seconds=5), "198.51.100.7", "Production web",
            revoked.occurred_at, "compromised",
        )  # fmt: skip
        EXPECTED[ROLLED] = StalePresentations(
            0, 1, now - timedelta(seconds=3), "2001:db8::5", "Batch job",
            expires_at=rolled.old_expires_at, replaced_by=NEW,
        )  # fmt: skip

        await eventually(lambda: evaluator.stats.notifications >= 3, 60, "three notifications")
        notifier = parts.notifier
        assert notifier is not None
        cycles = evaluator.stats.cycles
        await eventually(lambda: evaluator.stats.cycles >= cycles + 3, 30, "three more cycles")
        await eventually(
            lambda: (
                parts.scheduler is not None
                and notifier.received >= 3
                and not parts.scheduler.queued
            ),
            30,
            "the deliveries",
        )
        assert evaluator.stats.notifications == 3


def _check(payloads: list[dict[str, Any]]) -> None:
    assert [p["type"] for p in payloads] == ["alert.firing"] * 3
    [stuffed] = [p["data"] for p in payloads if p["data"]["rule"]["kind"] == "credential_stuffing"]
    assert stuffed["key"]["id"] == f"ip:{STUFFER}" and stuffed["value"] == 13
    assert stuffed["evidence"].startswith(
        f"IP {STUFFER} presented 13 distinct invalid or revoked keys in the last 15m "
        "(13 attempts: 12 unknown, 1 revoked)"
    ), stuffed["evidence"]
    payloads = [p for p in payloads if p["data"]["rule"]["kind"] == "stale_key_presented"]
    by_key = {p["data"]["key"]["id"]: p["data"] for p in payloads}
    assert set(by_key) == {REVOKED, ROLLED}
    for key, data in by_key.items():
        assert data["rule"]["kind"] == "stale_key_presented"
        assert data["key"]["name"] == EXPECTED[key].name
        expected = EXPECTED[key]
        assert data["value"] == expected.presented and data["threshold"] == 1
        evaluated = datetime.fromisoformat(
            next(p for p in payloads if p["data"]["key"]["id"] == key)["timestamp"]
        )
        assert data["evidence"] == evidence_text(key, expected, 900, evaluated)
    revoked, rolled = by_key[REVOKED]["evidence"], by_key[ROLLED]["evidence"]
    assert revoked.startswith(f"{REVOKED} (Production web), revoked ")
    assert "(compromised): presented 4 times in the last 15m, last from 198.51.100.7" in revoked
    assert f"(replaced by {NEW}): presented once in the last 15m, last from 2001:db8::5" in rolled
