"""The misuse detectors' reads: one module per rule kind, each answering a `StatsQuery`
of its kind with ONE query over its rollup (plus, where the scope needs it, the small
registry read of `projections.alert_scope.scope_keys`), whatever the number of keys.

Every reader has the signature of `Reader`; `READERS` maps the kinds that have one.
Every function is synchronous: call it off the event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from clickhouse_connect.driver.client import Client

from alerting.ports import StatsByKey, StatsQuery
from projections.detector_queries.error_pattern import error_pattern_stats
from projections.detector_queries.stuffing import stuffing_stats
from projections.detector_queries.unknown_ip import unknown_ip_stats
from projections.detector_queries.usage_spike import spike_stats
from schemas.alerts import RuleKind

Reader = Callable[[Client, StatsQuery, datetime], StatsByKey]

READERS: dict[RuleKind, Reader] = {
    RuleKind.USAGE_SPIKE: spike_stats,
    RuleKind.UNKNOWN_IP: unknown_ip_stats,
    RuleKind.ERROR_PATTERN: error_pattern_stats,
    RuleKind.CREDENTIAL_STUFFING: stuffing_stats,
}
