"""Placeholder: the `error_pattern` detector is being built (replaced in this session)."""

from __future__ import annotations

from datetime import datetime

from alerting.ports import WindowStats
from alerting.state import Observation
from schemas.alerts import AlertRule


def observe_error_pattern(
    rule: AlertRule, subject: str, stats: WindowStats | None, now: datetime
) -> Observation:
    raise NotImplementedError("error_pattern is not built yet")
