"""CLI read commands over the read layer: `keypulse keys`, `keypulse usage`, and `api`."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from infra.cli.read_backend import ReadBackend, ReadError, open_backend
from infra.clickhouse import ClickHouseUnavailable
from infra.http.auth import hash_secret
from infra.settings import ConfigError, Settings, load_settings
from projections.windows import Window

out = Console()
err = Console(stderr=True)

AccountOpt = Annotated[
    str | None,
    typer.Option("--account", help="Account id (needed when no worker is running)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(1)


def _print_json(data: Any) -> None:
    typer.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())


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


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        raise _fail(str(exc)) from None


def _backend() -> ReadBackend:
    try:
        return open_backend(_settings())
    except (ReadError, ClickHouseUnavailable) as exc:
        raise _fail(str(exc)) from None


def keys_cmd(account: AccountOpt = None, as_json: JsonOpt = False) -> None:
    """The keys page: Name, Key ID, Type, Created, Last Used, Status, requests 24h/7d/30d."""
    backend = _backend()
    try:
        rows = backend.list_keys(account)
    except ReadError as exc:
        raise _fail(str(exc)) from None
    finally:
        backend.close()
    if as_json:
        _print_json(rows)
    else:
        out.print(keys_table(rows))


def usage_cmd(
    key_id: str,
    account: AccountOpt = None,
    window: Annotated[Window, typer.Option(help="24h, 7d or 30d")] = Window.H24,
    as_json: JsonOpt = False,
) -> None:
    """Requests, errors, error rate, latency percentiles and renders of one key."""
    backend = _backend()
    try:
        usage = backend.key_usage(account, key_id, window)
    except ReadError as exc:
        raise _fail(str(exc)) from None
    finally:
        backend.close()
    if as_json:
        _print_json(usage)
    else:
        out.print(usage_table(usage))


def api_cmd() -> None:
    """Server mode: run the HTTP API on its own (ClickHouse over HTTP, not chDB)."""
    import uvicorn

    from infra.clickhouse import make_client
    from infra.http.client_pool import ClientPool
    from infra.wiring import build_api

    settings = _settings()
    if settings.clickhouse_dsn.startswith("chdb:"):
        raise _fail(
            "`keypulse api` is for server mode (KEYPULSE_CLICKHOUSE_DSN=http(s)://...); "
            "in embedded mode the worker serves the API"
        )
    api, _ = build_api(settings, ClientPool(lambda: make_client(settings), size=8))
    uvicorn.run(api, host=settings.api.host, port=settings.api.port)


def hash_cmd(secret: str) -> None:
    """Print the hash to configure for a management key (KEYPULSE_API_MANAGEMENT_KEYS)."""
    typer.echo(hash_secret(secret))


def register(app: typer.Typer) -> None:
    app.command("keys")(keys_cmd)
    app.command("usage")(usage_cmd)
    app.command("api")(api_cmd)
    api_keys = typer.Typer(help="Management keys for the HTTP API.", no_args_is_help=True)
    api_keys.command("hash")(hash_cmd)
    app.add_typer(api_keys, name="api-keys")
