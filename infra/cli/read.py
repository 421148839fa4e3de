"""`keypulse keys` (the listing; `infra.cli.keys` mounts it beside the write commands) and
`keypulse usage`, answered through the one read path (`infra.cli.read_backend`): the
worker's HTTP API while one runs, else ClickHouse."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from infra.cli.console import out, print_json
from infra.cli.errors import clean_errors
from infra.cli.key_views import keys_table
from infra.settings import load_settings
from projections.windows import Window
from schemas.utc import utc_now

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from infra.cli.read_backend import ReadBackend
    from infra.settings import Settings

AccountOpt = Annotated[
    str | None,
    typer.Option("--account", help="Account id (needed when no worker is running)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def reading(settings: Settings) -> AbstractContextManager[ReadBackend]:
    """`infra.cli.read_backend.reading`, imported when a read command runs (it brings
    FastAPI's models and clickhouse-connect, which the key commands do not need)."""
    from infra.cli.read_backend import reading as backend

    return backend(settings)


def usage_table(usage: dict[str, Any]) -> Table:
    table = Table(title=f"{usage['key_id']} over {usage['window']}", show_header=False)
    table.add_column("metric")
    table.add_column("value", justify="right")
    ms = "{:.1f} ms"
    rows = [
        ("requests", f"{usage['requests']:,}"),
        ("4xx", f"{usage['errors_4xx']:,}"),
        ("5xx", f"{usage['errors_5xx']:,}"),
        ("error rate", f"{usage['error_rate'] * 100:.2f} %"),
        ("latency p50", ms.format(usage["latency_p50_ms"]) if usage["latency_p50_ms"] else "-"),
        ("latency p95", ms.format(usage["latency_p95_ms"]) if usage["latency_p95_ms"] else "-"),
        ("latency p99", ms.format(usage["latency_p99_ms"]) if usage["latency_p99_ms"] else "-"),
        ("renders", f"{usage['renders']:,}"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


def list_keys(account: str | None, as_json: bool) -> None:
    """The keys page: name, key id, status, last use and requests over 24h/7d/30d (type
    and creation date too in a wide terminal; every field with --json)."""
    with reading(load_settings()) as backend:
        rows = backend.list_keys(account)
    if as_json:
        print_json(rows)
    else:
        out.print(keys_table(rows, utc_now(), out.width))


@clean_errors
def usage_cmd(
    key_id: str,
    account: AccountOpt = None,
    window: Annotated[Window, typer.Option(help="24h, 7d or 30d")] = Window.H24,
    as_json: JsonOpt = False,
) -> None:
    """Requests, errors, error rate, latency percentiles and renders of one key."""
    with reading(load_settings()) as backend:
        usage = backend.key_usage(account, key_id, window)
    if as_json:
        print_json(usage)
    else:
        out.print(usage_table(usage))


def register(app: typer.Typer) -> None:
    app.command("usage")(usage_cmd)
