"""`infra.secrets_rotation` against the real broker: a rule left in plaintext from before
sealing is sealed, sealed ones are rewrapped, and a rule changed by someone else while the
rotation ran keeps that change."""

from __future__ import annotations

from pathlib import Path

import pytest
from kafka import KafkaAdminClient

from alerting.channel_secrets import kids_of, needs_sealing
from infra.alert_admin import Publisher
from infra.kafka.admin import ensure_topics
from infra.master_keys import create_keyring_file
from infra.secrets_rotation import _republish_concurrent, read_rules, rotate
from infra.settings import Settings, load_settings
from schemas.alerts import AlertRule, AlertRuleCreated
from schemas.codec import encode
from tests.samples.alerting import SECRET, make_rule

pytestmark = [pytest.mark.kafka]


def _settings(tmp_path: Path, bootstrap: str, prefix: str) -> Settings:
    keyring = tmp_path / "master.keyring"
    create_keyring_file(keyring)
    return load_settings(
        _env_file=None,
        data_dir=tmp_path,
        kafka={"bootstrap_servers": bootstrap, "topic_prefix": prefix},
        secrets={"master_key_file": keyring},
    )


def _rule(rule_id: str, name: str = "Errors") -> AlertRule:
    channel = {"type": "webhook", "url": "https://example.com/h", "secret": SECRET}
    return make_rule(rule_id=rule_id, name=name, channels=[channel])


def test_rotation_seals_legacy_rewraps_the_rest_and_keeps_concurrent_edits(
    tmp_path: Path, kafka_bootstrap: str, topic_prefix: str
) -> None:
    settings = _settings(tmp_path, kafka_bootstrap, topic_prefix)
    ensure_topics(kafka_bootstrap, topic_prefix)
    try:
        _rotate_and_edit(settings)
    finally:
        # the legacy record is plaintext on purpose: its topics go, so that the session's
        # end scan (tests/conftest.py) holds for every other topic
        _delete_topics(kafka_bootstrap, topic_prefix)


def _delete_topics(bootstrap: str, prefix: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="rotation-test")
    try:
        admin.delete_topics([t for t in admin.list_topics() if t.startswith(prefix)])
    finally:
        admin.close()


def _rotate_and_edit(settings: Settings) -> None:
    with Publisher(settings) as publisher:
        topic = publisher.topics.alert_rules
        old = publisher.keyring.require().current_kid
        legacy = _rule("rule_legacy")  # published before sealing existed: plaintext
        publisher.send(topic, [(b"rule_legacy", encode(AlertRuleCreated(rule=legacy)), [])])
        publisher.rule(_rule("rule_sealed"))
        report = rotate(settings, publisher)
        assert report.kid != old and report.republished == 2
        assert (report.counts.sealed, report.counts.rewrapped) == (1, 1)
        assert report.remaining == {report.kid: 2}
        rules = read_rules(settings, topic).rules
        assert all(kids_of(r.channels) == {report.kid} for r in rules.values())
        assert not any(needs_sealing(r.channels) for r in rules.values())

        # someone renames a rule after the snapshot, before the rotation's update of it
        snapshot = read_rules(settings, topic)
        publisher.rule(_rule("rule_sealed", name="Renamed meanwhile"), replace=True)
        stale = publisher.rule(snapshot.rules["rule_sealed"], replace=True)
        assert _republish_concurrent(settings, publisher, snapshot, {"rule_sealed": stale}) == 1
        assert read_rules(settings, topic).rules["rule_sealed"].name == "Renamed meanwhile"
