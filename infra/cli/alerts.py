"""`keypulse rules …` and `keypulse deliveries …` (typer sub-apps mounted by `infra.cli`).

Writes (`rules add|delete`, `deliveries replay`) are events on Kafka, confirmed by the
broker, and work whether or not a worker runs. Reads open ClickHouse directly, which in
embedded mode (chDB) is only possible while no worker runs; with a worker running, use
its HTTP API.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from infra import alert_admin
from infra.clickhouse import ClickHouseUnavailable, make_client
from infra.kafka.admin import KafkaUnreachable
from infra.settings import ConfigError, Settings, load_settings

P = ParamSpec("P")
R = TypeVar("R")

READ_NOTE = (
    " Reads ClickHouse directly: in embedded mode only while no worker runs "
    "(with a worker running, use its HTTP API)."
)

rules_app = typer.Typer(
    help="Alert rules (published to the alert-rules topic).", no_args_is_help=True
)
deliveries_app = typer.Typer(
    help="Notification deliveries: attempts, dead letters, replays.", no_args_is_help=True
)

out = Console()
err = Console(stderr=True)

EXPECTED = (
    alert_admin.AlertAdminError,
    ConfigError,
    ClickHouseUnavailable,
    KafkaUnreachable,
)


def clean_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Known failures become one red line on stderr and exit status 1."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except EXPECTED as exc:
            err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper


def _settings() -> Settings:
    return load_settings()


def _with_client(settings: Settings, fn: Callable[[Any], R]) -> R:
    client = make_client(settings)
    try:
        return fn(client)
    finally:
        client.close()


# --------------------------------------------------------------------------- rules


@rules_app.command("add")
@clean_errors
def rules_add(
    account: Annotated[str | None, typer.Option(help="Account the rule belongs to.")] = None,
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    kind: Annotated[str | None, typer.Option(help="request_count, error_rate or latency.")] = None,
    window: Annotated[str | None, typer.Option(help="1m … 30d, e.g. 5m, 1h, 7d.")] = None,
    threshold: Annotated[
        float | None, typer.Option(help="Requests, error percentage, or latency ms.")
    ] = None,
    key: Annotated[str | None, typer.Option(help="Watch one key (key_…).")] = None,
    all_keys: Annotated[bool, typer.Option("--all-keys", help="Watch every key.")] = False,
    percentile: Annotated[str | None, typer.Option(help="p50, p95 or p99 (latency).")] = None,
    comparator: Annotated[str | None, typer.Option(help="gt, gte, lt or lte.")] = None,
    min_requests: Annotated[int | None, typer.Option(help="Requests needed to judge.")] = None,
    for_: Annotated[str | None, typer.Option("--for", help="Pending time, e.g. 2m.")] = None,
    keep_firing_for: Annotated[str | None, typer.Option()] = None,
    repeat_interval: Annotated[str | None, typer.Option()] = None,
    send_resolved: Annotated[bool, typer.Option("--send-resolved/--no-send-resolved")] = True,
    disabled: Annotated[
        bool, typer.Option("--disabled", help="Save, but do not evaluate.")
    ] = False,
    email: Annotated[list[str] | None, typer.Option(help="Mail recipient (repeatable).")] = None,
    slack_webhook: Annotated[str | None, typer.Option(help="Slack incoming webhook URL.")] = None,
    slack_token: Annotated[str | None, typer.Option(help="Slack bot token (xoxb-…).")] = None,
    slack_channel: Annotated[str | None, typer.Option(help="Slack channel for the token.")] = None,
    webhook_url: Annotated[str | None, typer.Option(help="Signed webhook endpoint.")] = None,
    webhook_secret: Annotated[
        str | None, typer.Option(help="whsec_… (generated and printed if omitted).")
    ] = None,
    rule_id: Annotated[str | None, typer.Option("--id", help="Rule id (generated).")] = None,
    file: Annotated[
        Path | None, typer.Option(help="A rule as JSON (options then override its fields).")
    ] = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="Replace the rule with this id (an update).")
    ] = False,
) -> None:
    """Validate a rule, check its URLs, and publish it (created, or updated with --replace)."""
    settings = _settings()
    data: dict[str, Any] = {}
    if file is not None:
        try:
            data = json.loads(file.read_text())
        except (OSError, ValueError) as exc:
            raise alert_admin.AlertAdminError(f"--file: {exc}") from None
        if not isinstance(data, dict):
            raise alert_admin.AlertAdminError("--file: expected a JSON object")
    generated_secret = None
    if webhook_url and not webhook_secret:
        webhook_secret = generated_secret = alert_admin.new_webhook_secret()
    channels = alert_admin.channels_from_options(
        email or [], slack_webhook, slack_token, slack_channel, webhook_url, webhook_secret
    )
    scope = None
    if key and all_keys:
        raise alert_admin.AlertAdminError("scope: give --key KEY_ID or --all-keys, not both")
    if key:
        scope = {"type": "key", "key_id": key}
    elif all_keys:
        scope = {"type": "account"}
    options = {
        "rule_id": rule_id,
        "account_id": account,
        "name": name,
        "scope": scope,
        "kind": kind,
        "percentile": percentile,
        "window_s": window,
        "comparator": comparator,
        "threshold": threshold,
        "min_requests": min_requests,
        "for_s": for_,
        "keep_firing_for_s": keep_firing_for,
        "repeat_interval_s": repeat_interval,
        "send_resolved": None if send_resolved else False,
        "enabled": False if disabled else None,
        "channels": channels or None,
    }
    data.update({k: v for k, v in options.items() if v is not None})
    if "scope" not in data:
        raise alert_admin.AlertAdminError("scope: give --key KEY_ID or --all-keys")
    data.setdefault("rule_id", alert_admin.new_rule_id())
    rule = alert_admin.build_rule(data)
    alert_admin.check_rule_urls(rule, settings)
    done = alert_admin.publish_rule(settings, rule, replace=replace)
    verb = "updated" if replace else "created"
    out.print(f"rule {rule.rule_id} {verb} (alert-rules offset {done.offset})")
    if generated_secret:
        out.print(f"webhook signing secret (shown once): {generated_secret}")


@rules_app.command("list", help="List the current rules." + READ_NOTE)
@clean_errors
def rules_list(account: Annotated[str | None, typer.Option()] = None) -> None:
    from projections.alert_store import ClickHouseRuleStore

    settings = _settings()
    rules = _with_client(settings, lambda c: ClickHouseRuleStore(c).list_rules(account))
    table = Table("rule", "account", "name", "kind", "window", "scope", "when", "on", "channels")
    for stored in rules:
        r = stored.rule
        kind = r.kind.value + (f" {r.percentile.value}" if r.percentile else "")
        table.add_row(
            r.rule_id,
            r.account_id,
            r.name,
            kind,
            f"{r.window_s}s",
            r.key_id or "all keys",
            f"{r.comparator.symbol} {r.threshold:g}",
            "yes" if r.enabled else "no",
            ",".join(c.type for c in r.channels) or "-",
        )
    out.print(table)
    out.print(f"{len(rules)} rule(s)")


@rules_app.command("show", help="Show one rule as JSON (secrets masked)." + READ_NOTE)
@clean_errors
def rules_show(rule_id: str) -> None:
    from projections.alert_store import ClickHouseRuleStore

    stored = _with_client(_settings(), lambda c: ClickHouseRuleStore(c).get_rule(rule_id))
    if stored is None:
        raise alert_admin.AlertAdminError(f"rule_id: no rule {rule_id!r}")
    doc = {"rule": alert_admin.masked_rule(stored.rule), "version": stored.version}
    out.print_json(json.dumps(doc, default=str))


@rules_app.command("delete")
@clean_errors
def rules_delete(
    rule_id: str,
    account: Annotated[
        str | None, typer.Option(help="The rule's account (looked up in ClickHouse if omitted).")
    ] = None,
) -> None:
    """Publish the rule's deletion; its instances stop without notifying."""
    from projections.alert_store import ClickHouseRuleStore

    settings = _settings()
    if account is None:
        stored = _with_client(settings, lambda c: ClickHouseRuleStore(c).get_rule(rule_id))
        if stored is None:
            raise alert_admin.AlertAdminError(f"rule_id: no rule {rule_id!r} (or pass --account)")
        account = stored.rule.account_id
    done = alert_admin.publish_rule_deletion(settings, rule_id, account)
    out.print(f"rule {rule_id} deleted (alert-rules offset {done.offset})")


# --------------------------------------------------------------------------- deliveries


@deliveries_app.command("list", help="Deliveries by their latest status, newest first." + READ_NOTE)
@clean_errors
def deliveries_list(
    status: Annotated[
        str | None, typer.Option(help="pending, delivered, retrying, dead or disabled.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
) -> None:
    from projections.alert_store import ClickHouseDeliveryLog

    allowed = ("pending", "delivered", "retrying", "dead", "disabled")
    if status is not None and status not in allowed:
        raise alert_admin.AlertAdminError(f"--status: expected one of {', '.join(allowed)}")
    statuses = [status] if status else None
    rows = _with_client(
        _settings(), lambda c: ClickHouseDeliveryLog(c).list_latest(statuses, limit)
    )
    table = Table(
        "delivery", "status", "attempt", "at", "channel", "state", "rule", "key", "detail"
    )
    for r in rows:
        n = r.notification
        table.add_row(
            r.delivery_id,
            r.status,
            str(r.attempt),
            r.at.isoformat(timespec="seconds"),
            n.channels[r.channel_index].type,
            n.state.value,
            n.rule.rule_id,
            n.key_id,
            r.detail[:80],
        )
    out.print(table)
    out.print(f"{len(rows)} deliver{'y' if len(rows) == 1 else 'ies'}")


@deliveries_app.command("replay")
@clean_errors
def deliveries_replay(delivery_id: str) -> None:
    """Publish the delivery's notification again, marked for this delivery only.

    Reads the delivery from ClickHouse (embedded mode: no worker running), then produces
    to Kafka; the notifier delivers it when a worker runs (a new retry round, a disabled
    endpoint is re-enabled).
    """
    from projections.alert_store import ClickHouseDeliveryLog

    settings = _settings()
    record = _with_client(settings, lambda c: ClickHouseDeliveryLog(c).get(delivery_id))
    if record is None:
        raise alert_admin.AlertAdminError(f"delivery_id: no delivery {delivery_id!r}")
    done = alert_admin.publish_replay(settings, record.notification, delivery_id)
    out.print(
        f"replay of {delivery_id} ({record.status}) queued on {done.topic} "
        f"partition {done.partition} offset {done.offset}"
    )
