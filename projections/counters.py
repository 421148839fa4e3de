"""Ordering keys that only grow (`seq` and `version` columns), independent of the clock.

A `GrowingCounter` reads the highest key already stored once, when first asked, and
counts up from there. Rows that order by these keys (`argMax(..., version)`, `ORDER BY
seq DESC`) then pick the row written last even when the wall clock went back across a
restart. Contract: one writing process per table (the evaluator for alert state, the
delivery scheduler for deliveries); gaps are allowed. The ingest log is shared by several
workers: there `seq` orders one writer's rows only (`ingest_batches.writer`).
"""

from __future__ import annotations

from clickhouse_connect.driver.client import Client


def highest_of(*columns: tuple[str, str]) -> str:
    """SQL for the highest value among (table, column) pairs, 0 when all are empty."""
    parts = [f"(SELECT max({column}) FROM {table})" for table, column in columns]
    return f"SELECT greatest(0, {', '.join(parts)})"


class GrowingCounter:
    """Values one above the highest of `columns` ((table, column) pairs) at first use,
    then each one above the last."""

    def __init__(self, client: Client, *columns: tuple[str, str]) -> None:
        self._client = client
        self._sql = highest_of(*columns)
        self._last: int | None = None

    def next(self) -> int:
        if self._last is None:
            rows = self._client.query(self._sql).result_rows
            self._last = int(rows[0][0]) if rows and rows[0][0] is not None else 0
        self._last += 1
        return self._last
