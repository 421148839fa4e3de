"""Which ClickHouse failures are transient: the `IsTransient` predicate for the adapters'
callers (the agents and the evaluator retry these; anything else is a bug and surfaces).

Transient: connection-level failures (clickhouse-connect's `OperationalError`, raised
after its own HTTP retries, or any `OSError` underneath), and server errors whose code
says "busy or unavailable right now" (`TRANSIENT_CODES`). Not transient: everything
else, e.g. a syntax error, an unknown table or column, a type mismatch.
"""

from __future__ import annotations

from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

from schemas.runtime.retry import causes, io_failure

TRANSIENT_CODES = frozenset(
    {
        159,  # TIMEOUT_EXCEEDED
        164,  # READONLY (a replica in read-only mode, e.g. while Keeper is away)
        202,  # TOO_MANY_SIMULTANEOUS_QUERIES
        203,  # NO_FREE_CONNECTION
        209,  # SOCKET_TIMEOUT
        210,  # NETWORK_ERROR
        241,  # MEMORY_LIMIT_EXCEEDED
        242,  # TABLE_IS_READ_ONLY
        252,  # TOO_MANY_PARTS
        319,  # UNKNOWN_STATUS_OF_INSERT
        425,  # SYSTEM_ERROR
        999,  # KEEPER_EXCEPTION
    }
)
"""ClickHouse server error codes that a later try may not hit."""


def clickhouse_transient(exc: BaseException) -> bool:
    """True when `exc` is a ClickHouse failure worth retrying (see the module docstring)."""
    if io_failure(exc):
        return True
    for e in causes(exc):
        if isinstance(e, OperationalError):
            return True
        if isinstance(e, DatabaseError) and e.code in TRANSIENT_CODES:
            return True
    return False
