"""`infra.master_keys` (where the keyring comes from), the publisher's sealing step and the
rotation's fold of rule events: files in a temporary directory, no Kafka."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from alerting.sealing import Keyring, parse_keyring
from infra.alert_admin import AlertAdminError, Publisher, SecretsUnavailable
from infra.master_keys import (
    KeyringSource,
    MasterKeyError,
    create_keyring_file,
    ensure_keyring,
    load_keyring,
    write_keyring,
)
from infra.secrets_rotation import fold_rules, usage
from infra.settings import Settings, load_settings
from schemas.alerts import AlertRule, AlertRuleCreated, AlertRuleDeleted, AlertRuleUpdated
from schemas.codec import encode
from tests.samples.alerting import SECRET, make_rule

KEY = bytes(range(32))
LINE = f"mk_env:{base64.b64encode(KEY).decode()}"


def _settings(tmp_path: Path, **secrets: object) -> Settings:
    return load_settings(_env_file=None, data_dir=tmp_path / "data", secrets=secrets)


def _webhook_rule(rule_id: str = "rule_1") -> AlertRule:
    return make_rule(
        rule_id=rule_id,
        channels=[{"type": "webhook", "url": "https://example.com/h", "secret": SECRET}],
    )


def test_nothing_configured_is_a_clear_error_when_a_secret_must_be_sealed(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    assert load_keyring(settings) is None
    with pytest.raises(SecretsUnavailable) as caught:
        Publisher(settings).sealed(_webhook_rule())
    assert "KEYPULSE_SECRETS_MASTER_KEY_FILE" in str(caught.value)
    assert "keypulse secrets init" in str(caught.value)
    no_secret = make_rule(channels=[{"type": "email", "to": ["a@example.com"]}])
    assert Publisher(settings).sealed(no_secret) is no_secret  # nothing to seal, no key needed


def test_sources_in_order_env_then_file_then_the_default_file(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    ensure_keyring(settings)  # a worker's first start
    default = tmp_path / "data" / "master.keyring"
    assert default.stat().st_mode & 0o777 == 0o600
    first = load_keyring(settings)
    assert first is not None and first.current_kid.startswith("mk_")
    ensure_keyring(settings)
    assert load_keyring(settings) == first  # never replaced
    other = tmp_path / "other.keyring"
    create_keyring_file(other)
    from_file = load_keyring(_settings(tmp_path, master_key_file=other))
    assert from_file is not None and from_file != first
    from_env = load_keyring(_settings(tmp_path, master_key_file=other, master_key=LINE))
    assert from_env == Keyring((("mk_env", KEY),))


def test_a_configured_file_that_is_missing_or_broken_says_what_to_do(tmp_path: Path) -> None:
    missing = tmp_path / "nope.keyring"
    with pytest.raises(MasterKeyError, match=r"no such file.*keypulse secrets init --file"):
        load_keyring(_settings(tmp_path, master_key_file=missing))
    missing.write_text("garbage\n")
    with pytest.raises(MasterKeyError, match="expected 'kid:<base64"):
        load_keyring(_settings(tmp_path, master_key_file=missing))
    with pytest.raises(MasterKeyError, match="exists already"):
        create_keyring_file(missing)


def test_the_source_rereads_a_rotated_file(tmp_path: Path) -> None:
    path = tmp_path / "k.keyring"
    ring = create_keyring_file(path)
    source = KeyringSource(_settings(tmp_path, master_key_file=path))
    assert source() == ring
    rotated = ring.with_current("mk_new", KEY)
    write_keyring(path, rotated)
    assert source.require() == rotated
    assert parse_keyring(path.read_text(), "k") == rotated
    assert path.stat().st_mode & 0o777 == 0o600


def test_the_publisher_seals_and_checks_sealed_values_belong_to_the_rule(tmp_path: Path) -> None:
    publisher = Publisher(_settings(tmp_path, master_key=LINE))
    rule = _webhook_rule()
    sealed = publisher.sealed(rule)
    assert (
        SECRET not in sealed.model_dump_json() and "kpsealed:v1:mk_env:" in sealed.model_dump_json()
    )
    assert publisher.sealed(sealed) == sealed
    no_secret = make_rule(rule_id="rule_mail", channels=[{"type": "email", "to": ["a@b.co"]}])
    assert usage([rule, sealed, no_secret]) == {"plaintext": 1, "mk_env": 1}
    moved = sealed.model_copy(update={"rule_id": "rule_2"})
    with pytest.raises(AlertAdminError, match=r"channels\.0\.secret.*another rule"):
        publisher.sealed(moved)


def test_fold_keeps_the_latest_definition_and_drops_deleted_rules() -> None:
    a1, a2, b = (
        make_rule(rule_id="rule_a"),
        make_rule(rule_id="rule_a", name="A2"),
        make_rule(rule_id="rule_b"),
    )
    records = [
        (0, 0, encode(AlertRuleCreated(rule=a1))),
        (0, 2, encode(AlertRuleDeleted(rule_id="rule_b", account_id=b.account_id))),
        (0, 1, encode(AlertRuleCreated(rule=b))),
        (1, 0, encode(AlertRuleUpdated(rule=a2))),  # another partition: order by partition
        (1, 1, b"not json"),
    ]
    latest, unreadable = fold_rules(records)
    assert unreadable == 1
    assert latest["rule_a"] == (a2, (1, 0)) and latest["rule_b"] == (None, (0, 2))
