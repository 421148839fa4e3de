"""Placeholder: the `usage_spike` query is being built (replaced in this session)."""

from __future__ import annotations

from datetime import datetime

from clickhouse_connect.driver.client import Client

from alerting.ports import StatsByKey, StatsQuery


def spike_stats(client: Client, query: StatsQuery, now: datetime) -> StatsByKey:
    raise NotImplementedError("usage_spike is not built yet")
