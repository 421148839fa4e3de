"""Placeholder: the `unknown_ip` detector is being built (replaced in this session)."""

from __future__ import annotations

from datetime import datetime

from alerting.ports import WindowStats
from alerting.state import Observation
from schemas.alerts import AlertRule


def observe_unknown_ip(
    rule: AlertRule, subject: str, stats: WindowStats | None, now: datetime
) -> Observation:
    raise NotImplementedError("unknown_ip is not built yet")
