"""The default misuse rules of a new account (pure)."""

from __future__ import annotations

import pytest

from alerting.defaults import default_misuse_rules, default_rule_id
from schemas.alerts import KIND_DEFAULTS, MISUSE_KINDS, AccountScope, EmailChannel, RuleKind


def test_one_enabled_account_wide_rule_per_detector_with_its_defaults() -> None:
    rules = default_misuse_rules("acc_7Hq2x", "ops@example.com")
    assert sorted(r.kind for r in rules) == sorted(MISUSE_KINDS)
    for rule in rules:
        assert rule.enabled and isinstance(rule.scope, AccountScope)
        assert rule.account_id == "acc_7Hq2x"
        assert rule.channels == [EmailChannel(to=["ops@example.com"])]
        for name, value in KIND_DEFAULTS[rule.kind].items():
            assert getattr(rule, name) == value, (rule.kind, name)
    assert len({r.rule_id for r in rules}) == len(rules)


def test_ids_are_stable_per_account_and_fit_a_rule_id() -> None:
    again = default_misuse_rules("acc_7Hq2x")
    assert [r.rule_id for r in again] == [r.rule_id for r in default_misuse_rules("acc_7Hq2x")]
    assert default_rule_id("acc_7Hq2x", RuleKind.USAGE_SPIKE) == "misuse-spike-7Hq2x"
    long_id = "acc_" + "x" * 64
    ids = {default_rule_id(long_id, k) for k in MISUSE_KINDS}
    assert len(ids) == len(MISUSE_KINDS) and all(len(i) <= 64 for i in ids)
    assert all(r.channels == [] for r in again), "no channel without an admin e-mail"


def test_a_bad_admin_email_is_refused() -> None:
    with pytest.raises(ValueError, match="not an email address"):
        default_misuse_rules("acc_7Hq2x", "nope")
