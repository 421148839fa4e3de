"""`keypulse keys` (the listing; `infra.cli.keys` mounts it beside the write commands) and
`keypulse usage`, answered through the one read path (`infra.cli.read_backend`): the
worker's HTTP API while one runs, else ClickHouse."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from infra.cli.console import out, print_json
from infra.cli.errors import clean_errors
from infra.settings import load_settings
from projections.windows import Window

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


def _when(value: str | None) -> str:
    return value.replace("T", " ")[:16] if value else "never"


def keys_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="API keys")
    table.add_column("Name", overflow="fold")
    table.add_column("Key ID", no_wrap=True)
    for column in ("Type", "Created", "Last Used", "Status"):
        table.add_column(column, no_wrap=column == "Status")
    for column in ("24h", "7d", "30d"):
        table.add_column(column, justify="right")
    for row in rows:
        status = row["status"]
        style = {"active": "green", "revoked": "red"}.get(status, "")
        table.add_row(
            row["name"],
            row["key_id"],
            row["type"],
            (row["created_at"] or "")[:10],
            _when(row["last_used_at"]),
            f"[{style}]{status}[/{style}]" if style else status,
            f"{row['requests_24h']:,}",
            f"{row['requests_7d']:,}",
            f"{row['requests_30d']:,}",
        )
    return table


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
    """The keys page: Name, Key ID, Type, Created, Last Used, Status, requests 24h/7d/30d."""
    with reading(load_settings()) as backend:
        rows = backend.list_keys(account)
    if as_json:
        print_json(rows)
    else:
        out.print(keys_table(rows))


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
