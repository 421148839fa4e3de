"""Plans and the number of live and test keys each allows (None: unlimited)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Plan(StrEnum):
    FREE = "free"
    PRO = "pro"
    BUSINESS = "business"
    ENTERPRISE = "enterprise"


@dataclass(frozen=True)
class KeyLimits:
    live: int | None
    test: int | None


PLAN_KEY_LIMITS: dict[Plan, KeyLimits] = {
    Plan.FREE: KeyLimits(live=2, test=5),
    Plan.PRO: KeyLimits(live=10, test=10),
    Plan.BUSINESS: KeyLimits(live=50, test=50),
    Plan.ENTERPRISE: KeyLimits(live=None, test=None),
}

ADMIN_KEY_LIMIT = 5
"""Active admin keys per account on every plan; they do not count against the live and
test limits, which are for the product API's keys."""

TEST_KEY_DAILY_RENDERS = 100
"""`pk_test_` keys: 100 renders a day, watermarked."""
