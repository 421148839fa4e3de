"""`keypulse rules …` and `keypulse deliveries …` (typer sub-apps mounted by `infra.cli`).

Writes (`rules add|delete`) are events on Kafka, confirmed by the broker, and work
whether or not a worker runs. Reads (`rules list|show`, `deliveries list`, the lookups of
`rules delete` and `deliveries replay`) take the one read path: the worker's HTTP API
while a worker runs, else ClickHouse directly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich import box
from rich.table import Table
from rich.text import Text

from alerting.defaults import default_misuse_rules
from alerting.ports import DeliveryStatus
from infra import alert_admin
from infra.cli.console import out, print_json
from infra.cli.errors import clean_errors
from infra.cli.read import reading
from infra.http.paging import MAX_LIMIT
from infra.settings import load_settings
from schemas.alerts import Comparator

READ_NOTE = " Reads through the worker's HTTP API while one runs, else ClickHouse directly."
STATUSES = DeliveryStatus.ALL

rules_app = typer.Typer(
    help="Alert rules (published to the alert-rules topic).", no_args_is_help=True
)
deliveries_app = typer.Typer(
    help="Notification deliveries: attempts, dead letters, replays.", no_args_is_help=True
)

AccountOpt = Annotated[
    str | None, typer.Option("--account", help="Only this account (all when reading directly).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


# --------------------------------------------------------------------------- rules add


def _rule_file(file: Path | None) -> dict[str, Any]:
    if file is None:
        return {}
    try:
        data = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise alert_admin.AlertAdminError(f"--file: {exc}") from None
    if not isinstance(data, dict):
        raise alert_admin.AlertAdminError("--file: expected a JSON object")
    return data


def _scope(key: str | None, all_keys: bool) -> dict[str, str] | None:
    if key and all_keys:
        raise alert_admin.AlertAdminError("scope: give --key KEY_ID or --all-keys, not both")
    if key:
        return {"type": "key", "key_id": key}
    return {"type": "account"} if all_keys else None


def _durations(for_: str | None, keep: str | None, repeat: str | None) -> dict[str, str | None]:
    return {"for_s": for_, "keep_firing_for_s": keep, "repeat_interval_s": repeat}


@rules_app.command("add")
@clean_errors
def rules_add(
    account: Annotated[str | None, typer.Option(help="Account the rule belongs to.")] = None,
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    kind: Annotated[
        str | None,
        typer.Option(
            help="request_count, error_rate, latency, stale_key_presented, or the misuse "
            "detectors usage_spike, unknown_ip, error_pattern, credential_stuffing."
        ),
    ] = None,
    window: Annotated[
        str | None, typer.Option(help="1m … 30d, e.g. 5m, 1h, 7d (stale_key_presented: 15m).")
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option(
            help="Requests, error percentage, latency ms, or presentations of a revoked or "
            "expired key (stale_key_presented: 1)."
        ),
    ] = None,
    key: Annotated[str | None, typer.Option(help="Watch one key (key_…).")] = None,
    all_keys: Annotated[bool, typer.Option("--all-keys", help="Watch every key.")] = False,
    percentile: Annotated[str | None, typer.Option(help="p50, p95 or p99 (latency).")] = None,
    comparator: Annotated[str | None, typer.Option(help="gt, gte, lt or lte.")] = None,
    min_requests: Annotated[
        int | None, typer.Option(help="Requests needed to judge (usage_spike: volume floor).")
    ] = None,
    direction: Annotated[
        str | None, typer.Option(help="usage_spike: rise (default), drop or both.")
    ] = None,
    granularity: Annotated[
        str | None, typer.Option(help="unknown_ip: address (default) or prefix (/24, /48).")
    ] = None,
    lookback: Annotated[
        str | None,
        typer.Option(help="unknown_ip: known addresses, e.g. 14d; error_pattern: baseline, 7d."),
    ] = None,
    status_class: Annotated[
        str | None, typer.Option(help="error_pattern: all, 4xx, 5xx, 401, 403 or 429.")
    ] = None,
    margin: Annotated[
        float | None, typer.Option(help="error_pattern: points above the key's baseline.")
    ] = None,
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
    settings = load_settings()
    data = _rule_file(file)
    generated_secret = None
    if webhook_url and not webhook_secret:
        webhook_secret = generated_secret = alert_admin.new_webhook_secret()
    channels = alert_admin.channels_from_options(
        email or [], slack_webhook, slack_token, slack_channel, webhook_url, webhook_secret
    )
    options = {
        "rule_id": rule_id,
        "account_id": account,
        "name": name,
        "scope": _scope(key, all_keys),
        "kind": kind,
        "percentile": percentile,
        "window_s": window,
        "comparator": comparator,
        "threshold": threshold,
        "min_requests": min_requests,
        "direction": direction,
        "granularity": granularity,
        "lookback_s": lookback,
        "status_class": status_class,
        "margin": margin,
        **_durations(for_, keep_firing_for, repeat_interval),
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


@rules_app.command("defaults")
@clean_errors
def rules_defaults(
    account: Annotated[str, typer.Argument(help="The account, e.g. acc_example.")],
    admin_email: Annotated[
        str | None, typer.Option(help="Where the misuse rules send their alerts (email).")
    ] = None,
) -> None:
    """Publish the default misuse rules of an account again (what `accounts create` does):
    one account-wide rule per detector, replacing any earlier version of them."""
    settings = load_settings()
    try:
        rules = default_misuse_rules(account, admin_email)
    except ValidationError as exc:
        raise alert_admin.AlertAdminError(alert_admin.describe_validation_error(exc)) from None
    with alert_admin.Publisher(settings) as publisher:
        for rule in rules:
            publisher.rule(rule, replace=True)
    out.print(f"misuse rules of {account}: {', '.join(r.rule_id for r in rules)}")


# --------------------------------------------------------------------------- rules reads


def _terminal_table(caption: str) -> Table:
    """The borderless style the CLI's listings share: ids never cut, prose wraps, and
    readable in an 80-column terminal (the caption says where the rest is)."""
    return Table(
        caption=caption,
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
    )


def _condition(r: dict[str, Any]) -> str:
    kind = r["kind"] + (f" {r['percentile']}" if r.get("percentile") else "")
    symbol = Comparator(r["comparator"]).symbol
    return f"{kind} {symbol} {r['threshold']:g} over {r['window_s']}s"


def rules_table(rules: list[dict[str, Any]]) -> Table:
    """Rules in the API's JSON shape (`StoredRuleOut`) as a table: the name with its
    channels (and "disabled") under it; every field, secrets masked, with `keypulse rules
    show ID` or `--json`."""
    table = _terminal_table("Every field: keypulse rules show RULE_ID, or --json")
    table.add_column("Rule", no_wrap=True)
    table.add_column("Name and channels", overflow="fold", ratio=1)
    table.add_column("Condition", overflow="fold", ratio=1)
    table.add_column("Scope", no_wrap=True)
    for r in rules:
        channels = ", ".join(c["type"] for c in r["channels"]) or "no channels"
        name = Text(r["name"])  # the user's words: never read as markup
        name.append(f"\n{channels}" + ("" if r["enabled"] else ", disabled"), style="dim")
        table.add_row(r["rule_id"], name, _condition(r), r["scope"].get("key_id") or "all keys")
    return table


@rules_app.command("list", help="List the current rules." + READ_NOTE)
@clean_errors
def rules_list(account: AccountOpt = None, as_json: JsonOpt = False) -> None:
    with reading(load_settings()) as backend:
        rules = backend.list_rules(account)
    if as_json:
        print_json(rules)
        return
    out.print(rules_table(rules))
    out.print(f"{len(rules)} rule(s)")


@rules_app.command("show", help="Show one rule as JSON (secrets masked)." + READ_NOTE)
@clean_errors
def rules_show(rule_id: str) -> None:
    with reading(load_settings()) as backend:
        print_json(backend.get_rule(rule_id))


@rules_app.command("delete")
@clean_errors
def rules_delete(
    rule_id: str,
    account: Annotated[
        str | None, typer.Option(help="The rule's account (looked up if omitted).")
    ] = None,
) -> None:
    """Publish the rule's deletion; its instances stop without notifying."""
    settings = load_settings()
    if account is None:
        with reading(settings) as backend:
            account = str(backend.get_rule(rule_id)["account_id"])
    done = alert_admin.publish_rule_deletion(settings, rule_id, account)
    out.print(f"rule {rule_id} deleted (alert-rules offset {done.offset})")


# --------------------------------------------------------------------------- deliveries


def deliveries_table(rows: list[dict[str, Any]]) -> Table:
    """Deliveries in the API's JSON shape (`DeliveryOut`) as a table (the channel and the
    notification's state: `--json`)."""
    table = _terminal_table("Channel ids and notification states: --json")
    table.add_column("Delivery and key", no_wrap=True)
    table.add_column("Status", no_wrap=True)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("At (UTC)", no_wrap=True)
    table.add_column("Rule", overflow="fold", ratio=1)
    table.add_column("Detail", overflow="fold", ratio=1)
    for r in rows:
        table.add_row(
            f"{r['delivery_id']}\n{r['key_id']}",
            r["status"],
            str(r["attempt"]),
            r["at"][5:16].replace("T", " "),
            Text(r["rule"]),
            Text(r["detail"][:200]),
        )
    return table


@deliveries_app.command("list", help="Deliveries by their latest status, newest first." + READ_NOTE)
@clean_errors
def deliveries_list(
    status: Annotated[str | None, typer.Option(help=", ".join(STATUSES) + ".")] = None,
    account: AccountOpt = None,
    limit: Annotated[int, typer.Option(min=1, max=MAX_LIMIT)] = 50,
    as_json: JsonOpt = False,
) -> None:
    if status is not None and status not in STATUSES:
        raise alert_admin.AlertAdminError(f"--status: expected one of {', '.join(STATUSES)}")
    with reading(load_settings()) as backend:
        rows = backend.list_deliveries(account, status, limit)
    if as_json:
        print_json(rows)
        return
    out.print(deliveries_table(rows))
    out.print(f"{len(rows)} deliver{'y' if len(rows) == 1 else 'ies'}")


@deliveries_app.command("replay")
@clean_errors
def deliveries_replay(delivery_id: str) -> None:
    """Publish the delivery's notification again, marked for this delivery only.

    The notifier delivers it when a worker runs (a new retry round; a disabled endpoint
    is re-enabled). The delivery is read through the worker's HTTP API while one runs.
    """
    with reading(load_settings()) as backend:
        out.print(backend.replay_delivery(delivery_id))
