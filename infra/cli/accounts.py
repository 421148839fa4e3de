"""`keypulse accounts create | show | plan`: accounts and their plans, as events on the
key-events topic.

`create` and `plan` go through the key service (`streams.keyservice`, actor "cli")
straight against Kafka; `show` reads the account's state from the topic with a key
follower (the same fold every reader uses). `create` also creates the account's first
admin key and prints its secret once, and switches on the default misuse rules
(`alerting.defaults`, published to the alert-rules topic), notifying `--admin-email`
when given; each is opt-out (`PATCH /alert-rules/{id}` with `{"enabled": false}`, or
`keypulse rules delete RULE_ID`), or skip them all with `--no-misuse-rules`.
"""

from __future__ import annotations

from typing import Annotated

import typer
from pydantic import ValidationError

from alerting.defaults import default_misuse_rules
from infra import alert_admin
from infra.cli.console import out, print_json
from infra.cli.errors import clean_errors
from infra.cli.key_session import execute, key_follower, key_service
from infra.cli.key_views import account_json, account_table, created_json, over_limit
from infra.cli.keys import account_id, print_secret, print_warnings
from infra.settings import load_settings
from schemas.key_ledger import KeyRecord
from schemas.keys import KeyAccess, KeyType
from schemas.plans import Plan
from schemas.utc import utc_now
from streams.keyservice.commands import ChangePlan, CommandRefused, CreateAccount, CreateKey
from streams.keyservice.service import AccountView, KeyService, Outcome

accounts_app = typer.Typer(
    help="Accounts and plans (events on the key-events topic).", no_args_is_help=True
)

AccountArg = Annotated[str, typer.Argument(help="The account, e.g. acc_example.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
ADMIN_KEY_NAME = "Initial admin key"


def _existing(account: str, plan: Plan) -> CommandRefused:
    return CommandRefused(
        "account_exists",
        f"account {account} already exists (on the {plan.value} plan); create another admin "
        f"key with `keypulse keys create {account} --name NAME --access admin`",
        409,
    )


def _create(
    service: KeyService, account: str, plan: Plan, name: str, key_type: KeyType
) -> tuple[str | None, Outcome]:
    created = execute(service, CreateAccount(account, plan))
    if not created.decision.events:  # the account was there already (same plan)
        raise _existing(account, plan)
    key = execute(service, CreateKey(account, name, key_type, KeyAccess.ADMIN))
    return key.decision.secret, key


@accounts_app.command("create")
@clean_errors
def accounts_create(
    account: AccountArg,
    plan: Annotated[Plan, typer.Option(help="free, pro, business or enterprise.")] = Plan.FREE,
    admin_name: Annotated[str, typer.Option(help="The first admin key's name.")] = (ADMIN_KEY_NAME),
    admin_type: Annotated[
        KeyType, typer.Option(help="live or test, for the first admin key.")
    ] = KeyType.LIVE,
    admin_email: Annotated[
        str | None,
        typer.Option(help="Where the default misuse rules send their alerts (email)."),
    ] = None,
    misuse_rules: Annotated[
        bool,
        typer.Option(
            "--misuse-rules/--no-misuse-rules",
            help="Switch on the default misuse rules (usage spikes, unknown IPs, unusual "
            "errors, credential stuffing, revoked or expired keys in use).",
        ),
    ] = True,
    as_json: JsonOpt = False,
) -> None:
    """Create an account and its first admin key, whose secret is printed once, and
    switch on the default misuse rules."""
    account = account_id(account)
    settings = load_settings()
    try:
        defaults = default_misuse_rules(account, admin_email) if misuse_rules else []
    except ValidationError as exc:
        raise alert_admin.AlertAdminError(
            "--admin-email: " + alert_admin.describe_validation_error(exc)
        ) from None
    with key_service(settings) as service:
        secret, outcome = _create(service, account, plan, admin_name, admin_type)
    with alert_admin.Publisher(settings) as publisher:
        for rule in defaults:
            publisher.rule(rule)
    key: KeyRecord | None = outcome.key
    assert key is not None and outcome.account is not None
    rule_ids = [r.rule_id for r in defaults]
    if as_json:
        body = created_json(key, secret, outcome.decision.warnings)
        print_json({"account": account_json(outcome.account), **body, "misuse_rules": rule_ids})
        return
    out.print(f"created account {account} on the {plan.value} plan", highlight=False)
    out.print(account_table(outcome.account))
    if defaults:
        to = f", alerting {admin_email}" if admin_email else " (no channel: give --admin-email)"
        out.print(f"misuse rules on{to}: {', '.join(rule_ids)}", highlight=False)
    out.print(f"admin key {key.key_id} ({key.name!r}, {key.key_type.value})", highlight=False)
    if secret is not None:
        print_secret(secret)
    print_warnings(outcome.decision.warnings)


@accounts_app.command("show")
@clean_errors
def accounts_show(account: AccountArg, as_json: JsonOpt = False) -> None:
    """An account's plan, limits and active keys, read from the key-events topic."""
    account = account_id(account)
    with key_follower(load_settings()) as follower:
        ledger = follower.snapshot(account)
    if ledger is None:
        raise CommandRefused(
            "account_not_found",
            f"no account {account}; create it with `keypulse accounts create {account}`",
            404,
        )
    view = AccountView.of(ledger, utc_now())
    if as_json:
        print_json(account_json(view, ledger))
    else:
        out.print(account_table(view, ledger))
        print_warnings(over_limit(view))


@accounts_app.command("plan")
@clean_errors
def accounts_plan(
    account: AccountArg,
    plan: Annotated[Plan, typer.Argument(help="free, pro, business or enterprise.")],
    as_json: JsonOpt = False,
) -> None:
    """Change an account's plan. On a downgrade below the active keys they keep working,
    and new keys of that type are refused until the account is under the limit."""
    account = account_id(account)
    with key_service(load_settings()) as service:
        outcome = execute(service, ChangePlan(account, plan))
    view = outcome.account
    assert view is not None
    notes = over_limit(view)
    if as_json:
        body = account_json(view)
        print_json({"account": body, "changed": bool(outcome.decision.events), "warnings": notes})
        return
    verb = "now on" if outcome.decision.events else "already on"
    out.print(f"{account} is {verb} the {plan.value} plan", highlight=False)
    out.print(account_table(view))
    print_warnings(notes)
