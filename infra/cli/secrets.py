"""`keypulse secrets …`: the master keyring that seals channel secrets at rest
(`infra.master_keys`, `infra.secrets_rotation`).

- `init` writes a keyring file with one new master key (0600);
- `status` says where the keyring comes from, its key ids (never the keys), and how many
  current rules use each;
- `rotate-master` makes a new key current and rewraps every rule's channel secrets by
  publishing rule updates; `--rewrap-only` rewraps under the key already current;
- `retire KID` removes an old key from the file once no rule uses it.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Annotated, Any

import typer

from infra.cli.console import out, print_json
from infra.cli.errors import CommandFailed, clean_errors
from infra.settings import load_settings

secrets_app = typer.Typer(help="The master key of channel secrets at rest.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _key_option(value: str | None) -> tuple[str, bytes] | None:
    if value is None:
        return None
    kid, sep, b64 = value.partition(":")
    try:
        key = base64.b64decode(b64, validate=True) if sep else b""
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32 or not kid:
        raise CommandFailed("--key: expected KID:<base64 of 32 random bytes>")
    return kid, key


@secrets_app.command("init")
@clean_errors
def secrets_init(
    file: Annotated[
        Path | None,
        typer.Option(
            help="Where to write it (default: KEYPULSE_SECRETS_MASTER_KEY_FILE, "
            "else <data dir>/master.keyring)."
        ),
    ] = None,
) -> None:
    """Write a new keyring file with one fresh master key (mode 0600)."""
    from infra.master_keys import create_keyring_file, default_keyring_path

    settings = load_settings()
    path = file or settings.secrets.master_key_file or default_keyring_path(settings)
    keyring = create_keyring_file(path)
    out.print(f"wrote {path} (master key {keyring.current_kid}, mode 0600)")
    if file is not None and settings.secrets.master_key_file != file:
        out.print(f"set KEYPULSE_SECRETS_MASTER_KEY_FILE={path} for every keypulse process")


@secrets_app.command("status")
@clean_errors
def secrets_status(as_json: JsonOpt = False) -> None:
    """Where the keyring comes from, its key ids, and the rules using each key."""
    from infra.master_keys import keyring_location, require_keyring
    from infra.secrets_rotation import read_rules, usage
    from schemas.topics import TopicNames

    settings = load_settings()
    keyring = require_keyring(settings)
    where = keyring_location(settings)
    assert where is not None
    topic = TopicNames.with_prefix(settings.kafka.topic_prefix).alert_rules
    used = usage(read_rules(settings, topic).rules.values())
    data: dict[str, Any] = {
        "source": where.describe(),
        "current": keyring.current_kid,
        "keys": [{"kid": kid, "rules": used.get(kid, 0)} for kid in keyring.kids],
        "unknown_keys": {k: n for k, n in used.items() if k not in keyring.kids},
    }
    if as_json:
        print_json(data)
        return
    out.print(f"keyring: {data['source']}")
    for entry in data["keys"]:
        mark = " (current)" if entry["kid"] == keyring.current_kid else ""
        out.print(f"  {entry['kid']}{mark}: {entry['rules']} rule(s)")
    for kid, n in data["unknown_keys"].items():
        out.print(f"  {kid}: {n} rule(s), [red]not in the keyring[/red]")


@secrets_app.command("rotate-master")
@clean_errors
def secrets_rotate(
    key: Annotated[
        str | None,
        typer.Option(help="The new master key as KID:<base64 of 32 bytes> (default: generated)."),
    ] = None,
    rewrap_only: Annotated[
        bool, typer.Option("--rewrap-only", help="No new key: rewrap under the current one.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Make a new master key current, then rewrap every rule's channel secrets under it
    (rule updates on the alert-rules topic); afterwards `retire` the old key."""
    from infra.alert_admin import Publisher
    from infra.secrets_rotation import rotate

    if rewrap_only and key is not None:
        raise CommandFailed("give --key or --rewrap-only, not both")
    settings = load_settings()

    def progress(done: int, total: int) -> None:
        if not as_json and (done == total or done % 100 == 0):
            out.print(f"rewrapped {done}/{total} rule(s)")

    with Publisher(settings) as publisher:
        report = rotate(
            settings, publisher, new_key=not rewrap_only, key=_key_option(key), progress=progress
        )
    data = {
        "current": report.kid,
        "new_key": report.new_key,
        "rules": report.rules,
        "rules_with_secrets": report.with_secrets,
        "republished": report.republished,
        "concurrent_changes": report.concurrent,
        "secrets_rewrapped": report.counts.rewrapped,
        "secrets_sealed": report.counts.sealed,
        "secrets_already_current": report.counts.current,
        "rules_per_key": report.remaining,
    }
    if as_json:
        print_json(data)
        return
    out.print(
        f"master key {report.kid} is current{' (new)' if report.new_key else ''}: "
        f"{report.rules} rule(s), {report.with_secrets} with channel secrets; "
        f"{report.republished} update(s) published ({report.counts.rewrapped} secret(s) "
        f"rewrapped, {report.counts.sealed} sealed from plaintext, "
        f"{report.counts.current} already current)"
    )
    if report.concurrent:
        out.print(f"{report.concurrent} rule(s) changed meanwhile: published again, newest form")
    old = sorted(k for k in report.remaining if k not in (report.kid, "plaintext"))
    if old:
        out.print(f"still in use: {', '.join(old)}; run again before retiring them")
    else:
        out.print("no rule uses an older key: `keypulse secrets retire KID` removes one")


@secrets_app.command("retire")
@clean_errors
def secrets_retire(kid: Annotated[str, typer.Argument(help="The old master key's id.")]) -> None:
    """Remove an old master key from the keyring file (refused while a rule uses it)."""
    from infra.secrets_rotation import retire
    from schemas.topics import TopicNames

    settings = load_settings()
    topic = TopicNames.with_prefix(settings.kafka.topic_prefix).alert_rules
    keyring = retire(settings, topic, kid)
    out.print(f"removed master key {kid}; the keyring holds {', '.join(keyring.kids)}")
