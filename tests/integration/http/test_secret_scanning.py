"""The GitHub secret-scanning partner endpoint served by a real worker (API, rule
projection, notifier): a correctly signed report revokes the reported active key with
reason compromised (once, however often it is reported), labels every token, and the
account's webhook channels receive the notice from the real notifier; unsigned, badly
signed and unknown-key reports are 401 and change nothing."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import orjson
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from infra.settings import SecretScanningKey
from infra.tools.receivers import HttpReceiver
from schemas.codec import decode_key_event
from schemas.key_format import generate_secret
from schemas.keys import KeyRevoked
from schemas.topics import TopicNames
from tests.eventually import eventually
from tests.integration.alerting.alert_e2e_support import alert_settings
from tests.integration.http.api_support import (
    ALPHA,
    chain_tenant,
    role_chain,
    serving,
    serving_settings,
)
from tests.integration.producer_support import read_topic
from tests.samples.alerting import SECRET
from tests.samples.keys import publish
from tests.unit.schemas.test_key_scan import lookalike

pytestmark = [pytest.mark.kafka, pytest.mark.asyncio]

PATH = "/secret-scanning/github"
KID = "github-test-key-1"
ROLES = ("admin", "full", "revoked")
HOOKS = ("/leak-a", "/leak-b")
SOURCE_URL = "https://github.com/octo/app/blob/abc123/config.env"


def pem(private: ec.EllipticCurvePrivateKey) -> str:
    return (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def signed(private: ec.EllipticCurvePrivateKey, body: bytes, kid: str = KID) -> dict[str, str]:
    signature = private.sign(body, ec.ECDSA(hashes.SHA256()))
    return {
        "Github-Public-Key-Identifier": kid,
        "Github-Public-Key-Signature": base64.b64encode(signature).decode(),
        "Content-Type": "application/json",
    }


def report(*tokens: str) -> bytes:
    return orjson.dumps(
        [
            {"token": t, "type": "keypulse_api_key", "url": SOURCE_URL, "source": "content"}
            for t in tokens
        ]
    )


def rule(name: str, urls: list[str]) -> dict[str, object]:
    return {
        "name": name,
        "scope": {"type": "account"},
        "kind": "request_count",
        "window_s": "1h",
        "threshold": 1_000_000,
        "channels": [{"type": "webhook", "url": u, "secret": SECRET} for u in urls],
    }


async def test_a_signed_report_revokes_once_and_notifies_the_account(
    tmp_path: Path,
    kafka_bootstrap: str,
    topics: TopicNames,
    topic_prefix: str,
    receiver: HttpReceiver,
) -> None:
    github, stranger = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    settings = serving_settings(alert_settings(tmp_path, kafka_bootstrap, topic_prefix))
    keys = [SecretScanningKey(key_identifier=KID, key=pem(github))]
    settings = settings.model_copy(
        update={"api": settings.api.model_copy(update={"secret_scanning_public_keys": keys})}
    )
    chain = role_chain(ALPHA, ROLES)
    publish(kafka_bootstrap, topics.key_events, chain.events)
    tenant = chain_tenant(chain, ROLES)
    (full_id, full), (_, revoked) = tenant.keys["full"], tenant.keys["revoked"]
    unknown, fake = generate_secret("live"), lookalike(full)
    urls = [receiver.url(p) for p in HOOKS]

    async with serving(settings, tenant.secrets()) as served:
        admin = served.auth("alpha:admin")
        rule_ids = []
        for name, hooks in (("Both hooks", urls), ("Hook a again", urls[:1])):
            created = await served.client.post(
                "/alert-rules", json=rule(name, hooks), headers=admin
            )
            assert created.status_code == 202, created.text
            rule_ids.append(created.json()["rule"]["rule_id"])

        async def rules_stored() -> bool:
            listed = await served.client.get("/alert-rules", headers=admin)
            return len(listed.json()["data"]) == 2

        await eventually(rules_stored, 30, "the two rules in ClickHouse")

        async def status() -> str:
            return str(
                (await served.client.get(f"/api-keys/{full_id}", headers=admin)).json()["status"]
            )

        body = report(full, revoked, unknown, fake)
        refused = {
            "unsigned": {"Content-Type": "application/json"},
            "stranger's signature": signed(stranger, body),
            "unknown key id": signed(github, body, kid="someone-else"),
            "signature of another body": signed(github, body + b" "),
        }
        for why, headers in refused.items():
            answer = await served.client.post(PATH, content=body, headers=headers)
            assert answer.status_code == 401, (why, answer.text)
            assert answer.headers["content-type"].startswith("application/problem+json")
            assert answer.json()["error"] == "invalid_signature"
        garbage = b'{"not": "an array"}'
        answer = await served.client.post(PATH, content=garbage, headers=signed(github, garbage))
        assert answer.status_code == 400, answer.text
        assert await status() == "active"

        expected = [
            {
                "token_hash": hashlib.sha256(t.encode()).hexdigest(),
                "token_type": "keypulse_api_key",
                "label": label,
            }
            for t, label in (
                (full, "true_positive"),
                (revoked, "true_positive"),
                (unknown, "false_positive"),
                (fake, "false_positive"),
            )
        ]
        for _ in range(2):  # the same report twice: revoked and notified once
            answer = await served.client.post(PATH, content=body, headers=signed(github, body))
            assert answer.status_code == 200, answer.text
            assert answer.json() == expected
        key = (await served.client.get(f"/api-keys/{full_id}", headers=admin)).json()
        assert (key["status"], key["revoke_reason"]) == ("revoked", "compromised")

        await eventually(lambda: len(receiver.received) >= len(HOOKS), 60, "the leak notices")
        assert sorted(r.path for r in receiver.received) == sorted(HOOKS)  # hook a once
        # each hook from one rule that has it (which rule brings hook a first depends on
        # the order the rules are read in; either way it is delivered once)
        hooks_of = {rule_ids[0]: set(HOOKS), rule_ids[1]: {HOOKS[0]}}
        delivered_by = {r.headers["webhook-id"] for r in receiver.received}
        for received in receiver.received:
            prefix, _, rule_id = received.headers["webhook-id"].rpartition(".")
            assert prefix == f"leak.{full_id}", received.headers["webhook-id"]
            assert received.path in hooks_of[rule_id], (received.path, rule_id)
        assert all(
            SOURCE_URL.encode() in r.body and full.encode() not in r.body for r in receiver.received
        )

    revocations = [
        e
        for r in read_topic(kafka_bootstrap, topics.key_events)
        if isinstance(e := decode_key_event(r.value), KeyRevoked) and e.key_id == full_id
    ]
    assert [(e.reason.value, e.actor) for e in revocations] == [
        ("compromised", "secret-scanning:github")
    ]
    notices = [
        r
        for r in read_topic(kafka_bootstrap, topics.notifications)
        if r.key == f"leak.{full_id}".encode()
    ]
    # one notice per rule that brought a hook (one or both rules, by the order they are
    # read in), and none more for the second report
    assert len(notices) == len(delivered_by)
