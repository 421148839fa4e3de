"""Placeholder: the `unknown_ip` query is being built (replaced in this session)."""

from __future__ import annotations

from datetime import datetime

from clickhouse_connect.driver.client import Client

from alerting.ports import StatsByKey, StatsQuery


def unknown_ip_stats(client: Client, query: StatsQuery, now: datetime) -> StatsByKey:
    raise NotImplementedError("unknown_ip is not built yet")
