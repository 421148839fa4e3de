"""The misuse detectors, pure: one module per rule kind, each turning one subject's
figures (`alerting.ports.WindowStats`) into an `Observation` with its evidence at `now`.

Every observer has the signature of `Observer`; `OBSERVERS` maps the kinds that have one
(the threshold kinds are judged by `alerting.planning.metric_value`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from alerting.detectors.error_pattern import observe_error_pattern
from alerting.detectors.stale_keys import observe_stale
from alerting.detectors.stuffing import observe_stuffing
from alerting.detectors.unknown_ip import observe_unknown_ip
from alerting.detectors.usage_spike import observe_spike
from alerting.ports import WindowStats
from alerting.state import Observation
from schemas.alerts import AlertRule, RuleKind

Observer = Callable[[AlertRule, str, WindowStats | None, datetime], Observation]
"""(rule, subject, its figures or None without any, now) -> the observation."""

OBSERVERS: dict[RuleKind, Observer] = {
    RuleKind.STALE_KEY_PRESENTED: observe_stale,
    RuleKind.USAGE_SPIKE: observe_spike,
    RuleKind.UNKNOWN_IP: observe_unknown_ip,
    RuleKind.ERROR_PATTERN: observe_error_pattern,
    RuleKind.CREDENTIAL_STUFFING: observe_stuffing,
}
