"""Placeholder: the `stuffing` query is being built (replaced in this session)."""

from __future__ import annotations

from datetime import datetime

from clickhouse_connect.driver.client import Client

from alerting.ports import StatsByKey, StatsQuery


def stuffing_stats(client: Client, query: StatsQuery, now: datetime) -> StatsByKey:
    raise NotImplementedError("stuffing is not built yet")
