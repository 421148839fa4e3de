"""How the key and account commands show their results: JSON shapes and rich renderables
(pure; no I/O). A secret appears only in `created_json` and `secret_lines`, which only the
create commands print, once.

`keys_table(rows, now, width)` is the keys listing (`keypulse keys`, the demo): in 80
columns Name, Key ID, Status, Last used (relative) and compact 24h/7d/30d counts; from
`WIDE` columns Type and Created too; the caption says where the rest is."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich import box
from rich.table import Table
from rich.text import Text

from schemas.key_ledger import AccountLedger, KeyRecord, KeyStatus
from streams.keyservice.service import AccountView

Json = dict[str, Any]

LIMIT_CLASSES = ("live", "test", "admin")
SHOWN_ONCE = (
    "This is the only time the secret is shown: store it now (for example in your secrets "
    "manager). keypulse keeps only its hash and cannot show it again."
)


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def key_json(key: KeyRecord) -> Json:
    """A key as JSON, in the fields of the HTTP API's key (`id`, `hint` shown as
    `pk_live_Ab3x…`), plus its account and deletion time; never its secret or hash."""
    return {
        "id": key.key_id,
        "key_id": key.key_id,
        "account_id": key.account_id,
        "name": key.name,
        "type": key.key_type.value,
        "access": key.access.value,
        "status": key.status.value,
        "hint": f"{key.hint}…",
        "created_at": _time(key.created_at),
        "created_by": key.created_by,
        "revoked_at": _time(key.revoked_at),
        "revoke_reason": key.revoke_reason.value if key.revoke_reason else None,
        "deleted_at": _time(key.deleted_at),
        "expires_at": _time(key.expires_at),
        "allowed_cidrs": list(key.allowed_cidrs),
        "replaces": key.replaces,
        "replaced_by": key.replaced_by,
    }


def account_json(view: AccountView, ledger: AccountLedger | None = None) -> Json:
    """An account: plan, limits and active counts per class (live, test, admin); with its
    ledger also when it was created and how many keys it has per status."""
    body: Json = {
        "account_id": view.account_id,
        "plan": view.plan.value,
        "seq": view.seq,
        "limits": dict(view.limits),
        "active": dict(view.active),
    }
    if ledger is not None:
        statuses = [k.status for k in ledger.keys.values()]
        stored = (KeyStatus.ACTIVE, KeyStatus.REVOKED, KeyStatus.DELETED)
        body["keys"] = {s.value: statuses.count(s) for s in stored}
        body["created_at"] = _time(ledger.created_at)
        body["updated_at"] = _time(ledger.updated_at)
    return body


def over_limit(view: AccountView) -> list[str]:
    """What a plan below the active counts means (the keys stay, new ones are refused)."""
    notes = []
    for cls in ("live", "test"):
        limit, active = view.limits[cls], view.active[cls]
        if limit is not None and active > limit:
            notes.append(
                f"{view.account_id} has {active} active {cls} keys and the {view.plan.value} "
                f"plan allows {limit}: the existing keys keep working, new {cls} keys are "
                f"refused until fewer than {limit} are active (revoke some)"
            )
    return notes


def created_json(key: KeyRecord, secret: str | None, warnings: list[str]) -> Json:
    body: Json = {"key": key_json(key), "secret": secret, "warnings": warnings}
    if secret is None:
        body["note"] = replayed_note(key.key_id)
    return body


def replayed_note(key_id: str) -> str:
    return (
        f"this Idempotency-Key already created {key_id}; its secret was shown then and "
        "cannot be shown again"
    )


def _limit(value: int | None) -> str:
    return "unlimited" if value is None else str(value)


def account_table(view: AccountView, ledger: AccountLedger | None = None) -> Table:
    table = Table(title=f"account {view.account_id}", show_header=False)
    table.add_column("field")
    table.add_column("value")
    table.add_row("plan", view.plan.value)
    for cls in LIMIT_CLASSES:
        table.add_row(
            f"{cls} keys", f"{view.active[cls]} active of {_limit(view.limits[cls])} allowed"
        )
    if ledger is not None:
        counts = account_json(view, ledger)["keys"]
        table.add_row("keys", ", ".join(f"{n} {status}" for status, n in counts.items()))
        table.add_row("created", ledger.created_at.isoformat(timespec="seconds"))
    return table


def key_table(key: KeyRecord) -> Table:
    table = Table(show_header=False)
    table.add_column("field")
    table.add_column("value", overflow="fold")
    row = key_json(key)
    for field in ("key_id", "name", "type", "access", "status", "hint", "created_at"):
        table.add_row(field, str(row[field]))
    if key.revoked_at is not None:
        table.add_row("revoked_at", str(row["revoked_at"]))
        table.add_row("revoke_reason", str(row["revoke_reason"]))
    for field in ("expires_at", "replaces", "replaced_by"):
        if row[field] is not None:
            table.add_row(field, str(row[field]))
    if key.allowed_cidrs:
        table.add_row("allowed_cidrs", ", ".join(key.allowed_cidrs))
    return table


# --------------------------------------------------------------------------- the listing

WIDE = 100
"""From this many terminal columns the keys table shows Type and Created too."""
_MORE = "keypulse keys --json or the console"
_STATUS_STYLE = {"active": "green", "revoked": "red", "expired": "yellow", "expiring": "yellow"}


def compact(n: int) -> str:
    """A count in at most 4 characters: `987`, `4.9k`, `49k`, `493k`, `1.0M`, `12M`."""
    if n < 1000:
        return str(n)
    for size, suffix in ((10**3, "k"), (10**6, "M"), (10**9, "B"), (10**12, "T")):
        value = n / size
        text = f"{value:.1f}" if value < 9.95 else f"{value:.0f}"
        if float(text) < 1000:
            return text + suffix
    return f"{n:.0e}"


def ago_short(value: str | datetime | None, now: datetime) -> str:
    """How long ago (`just now`, `14m ago`, `3h ago`, `12d ago`), or `never`."""
    if value is None:
        return "never"
    at = datetime.fromisoformat(value) if isinstance(value, str) else value
    seconds = (now - at).total_seconds()
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)}m ago"
    if seconds < 48 * 3600:
        return f"{int(seconds // 3600)}h ago"
    return f"{int(seconds // 86400)}d ago"


def _status(row: Json) -> Text:
    status = str(row["status"])
    if status == "active" and row.get("expiring_soon"):
        status = "expiring"
    return Text(status, style=_STATUS_STYLE.get(status, ""))


def keys_table(rows: list[Json], now: datetime, width: int = 80) -> Table:
    """The keys listing (rows in the HTTP API's key fields) for a terminal `width` wide;
    no cell is cut short in 80 columns (a long name wraps)."""
    wide = width >= WIDE
    more = "Access and last-used IP" if wide else "Created, type, access and last-used IP"
    caption = f"{more}: {_MORE}"
    table = Table(
        title=f"API keys ({len(rows)})",
        caption=caption,
        min_width=min(width, len(caption)),  # the caption on one line
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
    )
    table.add_column("Name", overflow="fold", min_width=8)
    table.add_column("Key ID", no_wrap=True)
    if wide:
        table.add_column("Type", no_wrap=True)
        table.add_column("Created", no_wrap=True)
    table.add_column("Status", no_wrap=True)
    table.add_column("Last used", no_wrap=True)
    for column in ("24h", "7d", "30d"):
        table.add_column(column, justify="right", no_wrap=True)
    for row in rows:
        cells = [str(row["name"]), str(row["key_id"])]
        if wide:
            cells += [str(row["type"]), str(row.get("created_at") or "")[:10]]
        cells += [ago_short(row.get("last_used_at"), now)]
        counts = [compact(int(row[f"requests_{w}"])) for w in ("24h", "7d", "30d")]
        plain = [Text(c) for c in cells]  # names are the user's: never read as markup
        table.add_row(*plain[:-1], _status(row), plain[-1], *(Text(c) for c in counts))
    return table
