"""The `keypulse` command line (typer + rich)."""

from __future__ import annotations

import contextlib
import signal
from pathlib import Path
from typing import Annotated

import typer

from infra.cli import api as cli_api
from infra.cli import read as cli_read
from infra.cli.accounts import accounts_app
from infra.cli.alerts import deliveries_app, rules_app
from infra.cli.console import out
from infra.cli.errors import clean_errors
from infra.cli.keys import keys_app
from infra.cli.secrets import secrets_app
from infra.clickhouse import make_client, migration_context
from infra.kafka.admin import ensure_registry_topics
from infra.kafka.broker import (
    BrokerError,
    LocalKafka,
    LocalKafkaCluster,
    broker_running,
    cluster_env,
    ensure_broker,
    ensure_cluster,
)
from infra.kafka.probe import broker_ready
from infra.settings import Settings, load_settings

app = typer.Typer(help="keypulse: usage and alerting pipeline for API keys.", no_args_is_help=True)
kafka_app = typer.Typer(
    help="The local Kafka broker (one node, or a cluster with --brokers).", no_args_is_help=True
)
topics_app = typer.Typer(help="Kafka topics of the registry.", no_args_is_help=True)
schemas_app = typer.Typer(help="Event schemas.", no_args_is_help=True)
app.add_typer(kafka_app, name="kafka")
app.add_typer(topics_app, name="topics")
app.add_typer(schemas_app, name="schemas")
app.add_typer(rules_app, name="rules")
app.add_typer(deliveries_app, name="deliveries")
app.add_typer(accounts_app, name="accounts")
app.add_typer(keys_app, name="keys")
app.add_typer(secrets_app, name="secrets")


@kafka_app.command("start")
@clean_errors
def kafka_start(
    brokers: Annotated[
        int,
        typer.Option(
            "--brokers",
            min=1,
            max=9,
            help="Nodes of a local KRaft cluster (each broker+controller); 3 for RF 3.",
        ),
    ] = 1,
) -> None:
    """Start the local broker unless one answers (formats storage on first start).

    With --brokers N (N > 1): N combined nodes on the bootstrap port + 0, 2, 4, … (their
    controllers on the controller port + 0, 2, 4, …), and the settings to export.
    """
    settings = load_settings()
    if brokers == 1:
        out.print(ensure_broker(settings.kafka, settings.kafka_dir).describe())
        return
    lease = ensure_cluster(settings.kafka, settings.kafka_dir, brokers)
    if lease.origin == "external":
        raise BrokerError(
            f"{lease.describe()}: that is not a cluster this command started, so no "
            f"{brokers}-broker settings apply; stop it first (keypulse kafka stop) or set "
            "KEYPULSE_KAFKA_BOOTSTRAP_SERVERS to free ports"
        )
    out.print(lease.describe())
    cluster = LocalKafkaCluster(settings.kafka, settings.kafka_dir, brokers)
    out.print("set these for the worker and the API (topics: RF 3, min ISR 2):")
    for name, value in cluster_env(cluster).items():
        typer.echo(f"export {name}={value}")  # unwrapped, to paste into a shell


@kafka_app.command("stop")
@clean_errors
def kafka_stop() -> None:
    """Stop the broker or cluster that `kafka start` recorded (and only those processes)."""
    settings = load_settings()
    stopped = LocalKafka(settings.kafka, settings.kafka_dir).stop()
    cluster = LocalKafkaCluster.recorded(settings.kafka, settings.kafka_dir)
    nodes = cluster.stop() if cluster is not None else 0
    if nodes:
        out.print(f"kafka cluster stopped ({nodes} node(s))")
    if stopped:
        out.print("kafka stopped")
    if not stopped and not nodes:
        out.print("kafka was not running")


@kafka_app.command("status")
@clean_errors
def kafka_status() -> None:
    """Report whether the local broker (or cluster) runs and answers metadata requests."""
    settings = load_settings()
    cluster = LocalKafkaCluster.recorded(settings.kafka, settings.kafka_dir)
    if cluster is not None and cluster.status().running:
        status = cluster.status()
        for node, node_status in status.nodes:
            state = (
                "not running"
                if node_status.pid is None
                else f"running (pid {node_status.pid}), "
                + ("ready" if node_status.ready else "not ready")
            )
            out.print(f"node {node.node_id} at {node.address}: {state}")
        out.print(f"kafka cluster: {status.running} of {status.brokers} node(s) running")
        if status.running < status.brokers:
            raise typer.Exit(3)
        return
    single = LocalKafka(settings.kafka, settings.kafka_dir).status()
    if single.pid is None:
        reachable = broker_ready(settings.kafka.bootstrap_servers)
        note = " (another broker answers there)" if reachable else ""
        out.print(f"kafka not running{note}")
        raise typer.Exit(3)
    state = "ready" if single.ready else "not ready"
    out.print(f"kafka running (pid {single.pid}), {state} at {settings.kafka.bootstrap_servers}")


@topics_app.command("ensure")
@clean_errors
def topics_ensure() -> None:
    """Create the registry's topics that are missing (idempotent)."""
    settings = load_settings()
    result = ensure_registry_topics(settings.kafka)
    for name in result.created:
        out.print(f"created  {name}")
    for name in result.existing:
        out.print(f"exists   {name}")


@app.command("migrate")
@clean_errors
def migrate_cmd() -> None:
    """Apply pending ClickHouse migrations (idempotent)."""
    from projections.migrate import migrate

    settings = load_settings()
    client = make_client(settings)
    try:
        applied = migrate(
            client,
            migration_context(settings),
            on_apply=lambda m: out.print(f"applying {m.id}"),
        )
    finally:
        client.close()
    out.print(f"{len(applied)} migration(s) applied" if applied else "schema is up to date")


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _run_worker(settings: Settings) -> None:
    import faust

    from infra.event_loop import use_uvloop
    from infra.gc_tuning import tune_for_serving
    from infra.wiring import assemble_worker

    use_uvloop()  # before faust or the app create the loop
    # Until faust installs its own handlers, SIGTERM still means a clean exit.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    worker = assemble_worker(settings)
    if settings.api.serve_in_worker:
        from infra.wiring import serve_http_in_worker

        serve_http_in_worker(worker, settings)
        out.print(f"HTTP API on http://{settings.api.host}:{settings.api.port} (docs at /docs)")
    tune_for_serving()
    try:
        faust_worker = faust.Worker(worker.app.app, loglevel="WARNING")
        # No start-up spinner: to spin "for every log message" faust sets the root logger
        # to DEBUG, so every debug call of every library (kafka-python logs per request)
        # would build a record; that cost a tenth of the worker's CPU under bench.keys.
        faust_worker.spinner = None
        with contextlib.suppress(SystemExit):
            faust_worker.execute_from_commandline()
    finally:
        worker.close()


@app.command("worker")
@clean_errors
def worker_cmd() -> None:
    """Run the faust worker (agents, and in embedded mode everything touching ClickHouse)."""
    settings = load_settings()
    ensure_registry_topics(settings.kafka)
    out.print("worker starting (Ctrl-C stops it)")
    _run_worker(settings)
    out.print("worker stopped")


@app.command("up")
@clean_errors
def up_cmd(
    check: Annotated[bool, typer.Option(help="Print a self-check, then stop.")] = False,
) -> None:
    """Local all-in-one: Kafka, topics, migrations, worker in the foreground."""
    settings = load_settings()
    with broker_running(settings.kafka, settings.kafka_dir) as lease:
        out.print(lease.describe())
        result = ensure_registry_topics(settings.kafka)
        out.print(f"topics: {len(result.created)} created, {len(result.existing)} existing")
        migrate_cmd()
        if check:
            from infra.tools.selfcheck import run_selfcheck

            run_selfcheck(settings, out)
        else:
            out.print("worker starting (Ctrl-C stops everything)")
            _run_worker(settings)
    if lease.started:
        out.print("kafka stopped")


@app.command("replay")
@clean_errors
def replay_cmd(
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Rebuild every projection from the topics into fresh tables and swap them in."""
    from infra.tools.replay import run_replay

    if not yes:
        typer.confirm("Rebuild all projections from Kafka now?", abort=True)
    run_replay(load_settings(), out)


@app.command("demo")
@clean_errors
def demo_cmd(
    duration: Annotated[
        float, typer.Option("--duration", min=10, help="Seconds of live traffic.")
    ] = 60,
) -> None:
    """Run the product end to end: keys, traffic, a misbehaving key, a delivered alert."""
    from infra.tools.demo import run_demo

    run_demo(load_settings(), out, duration)


@schemas_app.command("export")
@clean_errors
def schemas_export(directory: Path) -> None:
    """Write one JSON Schema per event type into DIRECTORY."""
    from schemas.export import export_json_schemas

    for path in export_json_schemas(directory):
        out.print(f"wrote {path}")


cli_read.register(app)
cli_api.register(app)


def main() -> None:
    app(prog_name="keypulse")


if __name__ == "__main__":  # pragma: no cover
    main()
