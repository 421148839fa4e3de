"""`keypulse keys …`: the listing (no subcommand, or `list`) and the write commands
`create | rename | allow-list | roll | revoke | delete`, and `scan` (leaked keys in
files, `infra.cli.key_scan`).

Writes go through the key service (`streams.keyservice`) straight against Kafka, with
actor "cli": the command is decided on the account's state read from the key-events
topic and confirmed once this process has read its event back, whether or not a worker
runs. The listing takes the one read path (the worker's HTTP API, else ClickHouse).

A secret is printed by `keys create` and `keys roll` only, once; with `--json` it is the
`secret` field.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from infra.cli import read as cli_read
from infra.cli.console import err, out, print_json
from infra.cli.errors import CommandFailed, clean_errors
from infra.cli.key_scan import DEFAULT_MAX_BYTES, run_scan
from infra.cli.key_session import execute, key_service
from infra.cli.key_views import SHOWN_ONCE, created_json, key_json, key_table, replayed_note
from infra.settings import load_settings
from schemas.ids import ACCOUNT_ID_PATTERN, KEY_ID_PATTERN
from schemas.key_ledger import KeyRecord
from schemas.keys import IDEMPOTENCY_KEY_PATTERN, KeyAccess, KeyType, RevokeReason
from streams.keyservice.commands import (
    OVERLAPS,
    CreateKey,
    DeleteKey,
    RenameKey,
    RevokeKey,
    RollKey,
    SetAllowList,
    duration_of,
    normalised_cidrs,
    overlap_of,
    roll_hash,
)
from streams.keyservice.commands import create_hash as _create_hash
from streams.keyservice.service import Outcome

keys_app = typer.Typer(
    help="API keys: list them (no subcommand), create, rename, allow-list, roll, revoke, delete; "
    "scan files for leaked keys.",
    invoke_without_command=True,
)

AccountArg = Annotated[str, typer.Argument(help="The account, e.g. acc_example.")]
KeyArg = Annotated[str, typer.Argument(help="The key id (key_…).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def account_id(value: str) -> str:
    """`value` if it is an account id, else one line saying what one looks like."""
    if not re.fullmatch(ACCOUNT_ID_PATTERN, value):
        raise CommandFailed(f"ACCOUNT: expected acc_ and 3-64 letters or digits, got {value!r}")
    return value


def _key_id(value: str) -> str:
    if not re.fullmatch(KEY_ID_PATTERN, value):
        raise CommandFailed(f"KEY_ID: expected key_ and 6-64 letters or digits, got {value!r}")
    return value


def print_warnings(warnings: list[str]) -> None:
    for warning in warnings:
        err.print(f"[yellow]warning:[/yellow] {warning}", highlight=False, soft_wrap=True)


def print_secret(secret: str) -> None:
    """The one place a secret is printed for people: on its own line, then the warning."""
    out.print("secret (shown once):")
    out.print(f"  {secret}", markup=False, highlight=False, soft_wrap=True)
    err.print(f"[bold yellow]{SHOWN_ONCE}[/bold yellow]", highlight=False, soft_wrap=True)


def print_created(key: KeyRecord, secret: str | None, warnings: list[str], as_json: bool) -> None:
    """A created key; its secret once (None: an idempotent retry, which has none)."""
    if as_json:
        print_json(created_json(key, secret, warnings))
        if secret is not None:
            err.print(SHOWN_ONCE, highlight=False, soft_wrap=True)
    else:
        out.print(
            f"created {key.key_type.value} key {key.key_id} ({key.name!r}, {key.access.value} "
            f"access) in {key.account_id}",
            highlight=False,
        )
        out.print(key_table(key))
        if secret is not None:
            print_secret(secret)
        else:
            err.print(f"note: {replayed_note(key.key_id)}", highlight=False, soft_wrap=True)
    if not as_json:
        print_warnings(warnings)


def _key_of(outcome: Outcome) -> KeyRecord:
    assert outcome.key is not None, "a key command's outcome names its key"
    return outcome.key


def _print_change(outcome: Outcome, done: str, unchanged: str, as_json: bool) -> None:
    key = _key_of(outcome)
    changed = bool(outcome.decision.events)
    if as_json:
        print_json(
            {"key": key_json(key), "changed": changed, "warnings": outcome.decision.warnings}
        )
        return
    out.print(f"{key.key_id} {done if changed else unchanged}", highlight=False)
    out.print(key_table(key))
    print_warnings(outcome.decision.warnings)


def create_hash(
    name: str,
    key_type: KeyType,
    access: KeyAccess,
    allowed_cidrs: tuple[str, ...] = (),
    expires: str | None = None,
) -> str:
    """What an idempotent retry must repeat: the body `POST /api-keys` would get."""
    return _create_hash(name, key_type, access, normalised_cidrs(allowed_cidrs), expires)


@keys_app.callback()
@clean_errors
def keys_main(
    ctx: typer.Context,
    account: cli_read.AccountOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The keys page (no subcommand): Name, Key ID, Type, Created, Last Used, Status,
    requests 24h/7d/30d, through the worker's HTTP API while one runs, else ClickHouse.
    The subcommands create, rename, revoke and delete keys through the key service."""
    if ctx.invoked_subcommand is None:
        cli_read.list_keys(account, as_json)


@keys_app.command("list")
@clean_errors
def keys_list(account: cli_read.AccountOpt = None, as_json: JsonOpt = False) -> None:
    """The keys page (the same as `keypulse keys` without a subcommand)."""
    cli_read.list_keys(account, as_json)


@keys_app.command("create")
@clean_errors
def keys_create(
    account: AccountArg,
    name: Annotated[str, typer.Option("--name", help="What the key is for.")],
    key_type: Annotated[
        KeyType, typer.Option("--type", help="live (pk_live_) or test (pk_test_).")
    ] = KeyType.LIVE,
    access: Annotated[
        KeyAccess,
        typer.Option(help="full (product API), read_only (reads), admin (key management)."),
    ] = KeyAccess.FULL,
    idempotency_key: Annotated[
        str | None,
        typer.Option(help="Retrying with the same key and options creates nothing new."),
    ] = None,
    allow: Annotated[
        list[str] | None,
        typer.Option(
            "--allow",
            help="A network or address the key may be used from (repeat it); default: anywhere.",
        ),
    ] = None,
    expires_in: Annotated[
        str | None, typer.Option(help="The key stops working after this, e.g. 90m, 12h, 30d.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a key and print its secret once (it cannot be shown again)."""
    _idempotency_key(idempotency_key)
    cidrs = tuple(allow or ())
    command = CreateKey(
        account_id(account),
        name,
        key_type,
        access,
        idempotency_key=idempotency_key,
        request_hash=create_hash(name, key_type, access, cidrs, expires_in)
        if idempotency_key
        else None,
        allowed_cidrs=cidrs,
        expires_in=None if expires_in is None else duration_of(expires_in, "--expires-in"),
    )
    with key_service(load_settings()) as service:
        outcome = execute(service, command)
    print_created(_key_of(outcome), outcome.decision.secret, outcome.decision.warnings, as_json)


@keys_app.command("rename")
@clean_errors
def keys_rename(
    account: AccountArg,
    key_id: KeyArg,
    name: Annotated[str, typer.Argument(help="The new name.")],
    as_json: JsonOpt = False,
) -> None:
    """Rename a key (revoked keys too)."""
    command = RenameKey(account_id(account), _key_id(key_id), name)
    with key_service(load_settings()) as service:
        outcome = execute(service, command)
    _print_change(outcome, f"renamed to {name!r}", f"already named {name!r}", as_json)


def _idempotency_key(value: str | None) -> None:
    if value is not None and not re.fullmatch(IDEMPOTENCY_KEY_PATTERN, value):
        raise CommandFailed("--idempotency-key: 1-255 printable ASCII characters, no spaces")


@keys_app.command("allow-list")
@clean_errors
def keys_allow_list(
    account: AccountArg,
    key_id: KeyArg,
    cidrs: Annotated[
        list[str] | None, typer.Argument(help="The networks or addresses (replacing the list).")
    ] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Allow the key from anywhere.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Replace a key's allow-list (requests from elsewhere are refused), or --clear it."""
    if bool(cidrs) == clear:
        raise CommandFailed("give the networks (e.g. 203.0.113.0/24 2001:db8::/32) or --clear")
    command = SetAllowList(account_id(account), _key_id(key_id), tuple(cidrs or ()))
    with key_service(load_settings()) as service:
        outcome = execute(service, command)
    allowed = ", ".join(_key_of(outcome).allowed_cidrs) or "anywhere"
    _print_change(outcome, f"allowed from {allowed}", f"already allowed from {allowed}", as_json)


@keys_app.command("roll")
@clean_errors
def keys_roll(
    account: AccountArg,
    key_id: KeyArg,
    overlap: Annotated[
        str,
        typer.Option(help="How long the old key keeps working: " + ", ".join(OVERLAPS) + "."),
    ],
    idempotency_key: Annotated[
        str | None,
        typer.Option(help="Retrying with the same key and options rolls nothing new."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Replace a key by a new one (same name, type, access and allow-list) and print the new
    secret once; the old key expires after the overlap."""
    _idempotency_key(idempotency_key)
    command = RollKey(
        account_id(account),
        _key_id(key_id),
        overlap_of(overlap),
        idempotency_key=idempotency_key,
        request_hash=roll_hash(key_id, overlap.strip()) if idempotency_key else None,
    )
    with key_service(load_settings()) as service:
        outcome = execute(service, command)
    new = _key_of(outcome)
    if not as_json and new.replaces is not None:
        out.print(f"rolled {new.replaces}: the old key expires after {overlap}", highlight=False)
    print_created(new, outcome.decision.secret, outcome.decision.warnings, as_json)


@keys_app.command("revoke")
@clean_errors
def keys_revoke(
    account: AccountArg,
    key_id: KeyArg,
    reason: Annotated[RevokeReason, typer.Option(help="Why (kept in the audit log).")] = (
        RevokeReason.USER_REQUEST
    ),
    as_json: JsonOpt = False,
) -> None:
    """Revoke a key: at once and for good (requests with it are refused from now on)."""
    command = RevokeKey(account_id(account), _key_id(key_id), reason)
    with key_service(load_settings()) as service:
        outcome = execute(service, command)
    _print_change(outcome, "revoked", "was already revoked (revocation is permanent)", as_json)


@keys_app.command("delete")
@clean_errors
def keys_delete(account: AccountArg, key_id: KeyArg, as_json: JsonOpt = False) -> None:
    """Delete a revoked key (an active key must be revoked first)."""
    command = DeleteKey(account_id(account), _key_id(key_id))
    with key_service(load_settings()) as service:
        outcome = execute(service, command)
    _print_change(outcome, "deleted", "deleted", as_json)


@keys_app.command("scan")
@clean_errors
def keys_scan(
    paths: Annotated[
        list[Path], typer.Argument(help="Files or directories (recursively).", metavar="PATH")
    ],
    revoke: Annotated[
        bool, typer.Option("--revoke", help="Revoke the active keys found (reason compromised).")
    ] = False,
    max_bytes: Annotated[
        int, typer.Option(help="Skip files larger than this many bytes.", min=1)
    ] = DEFAULT_MAX_BYTES,
    as_json: JsonOpt = False,
) -> None:
    """Find keypulse keys in files (format and checksum) and say whether each is active;
    with --revoke revoke the active ones. Secrets are never printed, only their hints.
    Exit 0: no active key left exposed; 3: active keys found and not revoked."""
    raise typer.Exit(run_scan(load_settings(), paths, revoke, as_json, max_bytes))
