"""`keypulse api` (server mode: the HTTP API on its own) and `keypulse api-keys hash`."""

from __future__ import annotations

import typer

from infra.cli.errors import CommandFailed, clean_errors
from infra.settings import load_settings
from schemas.key_format import hash_secret

api_keys_app = typer.Typer(help="Management keys for the HTTP API.", no_args_is_help=True)


@clean_errors
def api_cmd() -> None:
    """Server mode: run the HTTP API on its own (ClickHouse over HTTP, not chDB)."""
    import uvicorn

    from infra.clickhouse import make_client
    from infra.gc_tuning import tune_for_serving
    from infra.http.client_pool import ClientPool
    from infra.wiring import build_api

    settings = load_settings()
    if settings.clickhouse_dsn.startswith("chdb:"):
        raise CommandFailed(
            "`keypulse api` is for server mode (KEYPULSE_CLICKHOUSE_DSN=http(s)://...); "
            "in embedded mode the worker serves the API"
        )
    api, _ = build_api(settings, ClientPool(lambda: make_client(settings), size=8))
    tune_for_serving()
    uvicorn.run(
        api, host=settings.api.host, port=settings.api.port, proxy_headers=False, loop="uvloop"
    )


@api_keys_app.command("hash")
def hash_cmd(secret: str) -> None:
    """Print the hash to configure for a management key (KEYPULSE_API_MANAGEMENT_KEYS)."""
    typer.echo(hash_secret(secret))


def register(app: typer.Typer) -> None:
    app.command("api")(api_cmd)
    app.add_typer(api_keys_app, name="api-keys")
