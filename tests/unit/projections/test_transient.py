"""`projections.transient`: ClickHouse outages are transient, query bugs are not."""

from __future__ import annotations

from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError, ProgrammingError

from projections.transient import clickhouse_transient


def test_connection_failures_and_busy_servers_are_transient() -> None:
    assert clickhouse_transient(OperationalError("Error executing HTTP request"))
    assert clickhouse_transient(DatabaseError("Code: 241. MEMORY_LIMIT_EXCEEDED", code=241))
    assert clickhouse_transient(DatabaseError("Code: 202. TOO_MANY_SIMULTANEOUS", code=202))
    assert clickhouse_transient(ConnectionRefusedError(111, "refused"))
    wrapped = RuntimeError("insert failed")
    wrapped.__cause__ = OperationalError("network")
    assert clickhouse_transient(wrapped)


def test_query_bugs_are_not_transient() -> None:
    assert not clickhouse_transient(DatabaseError("Code: 62. SYNTAX_ERROR", code=62))
    assert not clickhouse_transient(DatabaseError("Code: 47. UNKNOWN_IDENTIFIER", code=47))
    assert not clickhouse_transient(DatabaseError("no code"))
    assert not clickhouse_transient(ProgrammingError("Code: 60. UNKNOWN_TABLE", code=60))
    assert not clickhouse_transient(TypeError("unsupported operand"))
