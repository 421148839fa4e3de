"""The key commands' pure parts: what they print, the spinner of a slow step, and how
refusals and timeouts end a command."""

from __future__ import annotations

import io
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Annotated
from uuid import uuid4

import orjson
import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from infra.cli.errors import TEMPORARY_EXIT, clean_errors
from infra.cli.key_session import waiting_for
from infra.cli.key_views import (
    Json,
    account_json,
    ago_short,
    compact,
    created_json,
    key_json,
    keys_table,
    over_limit,
)
from infra.cli.keys import create_hash
from infra.http.key_views import KeyOut
from infra.http.routes.key_commands import CreateKeyIn
from projections.queries import KeyRow
from schemas.key_ledger import AccountLedger, KeyRecord, KeyStatus
from schemas.keys import KeyAccess, KeyType
from schemas.plans import Plan
from streams.keyservice.commands import CommandRefused, request_hash
from streams.keyservice.service import AccountView, Unavailable
from tests.eventually import eventually_sync

AT = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def _key(status: KeyStatus = KeyStatus.ACTIVE) -> KeyRecord:
    return KeyRecord(
        account_id="acc_views",
        key_id="key_views01",
        name="Web",
        key_type=KeyType.LIVE,
        access=KeyAccess.FULL,
        status=status,
        secret_hash="sha256:" + "ab" * 32,
        hint="pk_live_Ab3x",
        created_at=AT,
        created_by="cli",
        updated_at=AT,
        seq=2,
    )


def test_key_json_has_no_secret_hash() -> None:
    body = key_json(_key())
    assert "secret_hash" not in body and "ab" * 32 not in str(body)
    assert (
        body["hint"] == "pk_live_Ab3x…"
        and body["id"] == body["key_id"]
        and body["created_at"] == AT.isoformat()
    )


def test_a_replayed_create_says_why_there_is_no_secret() -> None:
    assert "note" not in created_json(_key(), "pk_live_x", [])
    replayed = created_json(_key(), None, [])
    assert replayed["secret"] is None and "cannot be shown again" in replayed["note"]


def _ledger(plan: Plan, live: int) -> AccountLedger:
    ledger = AccountLedger("acc_views", plan, 1, uuid4(), AT, AT)
    ledger.active = {"live": live}
    ledger.keys = {"key_views01": _key(KeyStatus.REVOKED)}
    return ledger


@pytest.mark.parametrize(("plan", "live", "notes"), [(Plan.FREE, 3, 1), (Plan.FREE, 2, 0)])
def test_over_limit_notes_only_when_above_the_plan(plan: Plan, live: int, notes: int) -> None:
    found = over_limit(AccountView.of(_ledger(plan, live), AT))
    assert len(found) == notes
    if notes:
        assert found[0].startswith("acc_views has 3 active live keys and the free plan allows 2")


def test_account_json_counts_keys_by_status() -> None:
    ledger = _ledger(Plan.ENTERPRISE, 0)
    body = account_json(AccountView.of(ledger, AT), ledger)
    assert body["limits"] == {"live": None, "test": None, "admin": 5}
    assert body["keys"] == {"active": 0, "revoked": 1, "deleted": 0}


def test_request_hash_is_the_canonical_create_body() -> None:
    a = create_hash("Web", KeyType.LIVE, KeyAccess.FULL)
    assert a == create_hash("Web", KeyType.LIVE, KeyAccess.FULL)
    assert a != create_hash("Web", KeyType.TEST, KeyAccess.FULL)
    assert a.startswith("sha256:") and len(a) == 71
    # the CLI's create and `POST /api-keys {"name": "Web", "type": "live"}` are one request
    http_body = CreateKeyIn.model_validate({"type": "live", "name": "Web"})
    assert a == request_hash(http_body.model_dump(mode="json"))


def test_a_slow_step_shows_a_spinner_and_a_quick_one_does_not() -> None:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=80)
    assert waiting_for("quick", lambda: 7, console, after_s=5.0) == 7
    assert screen.getvalue() == ""

    release = threading.Event()
    result: list[int] = []
    runner = threading.Thread(
        target=lambda: result.append(
            waiting_for("reading the topic", lambda: release.wait(30) and 8, console, 0.05)
        )
    )
    runner.start()
    eventually_sync(lambda: "reading the topic" in screen.getvalue(), 10, "the spinner")
    release.set()
    runner.join(10)
    assert result == [8]


def test_a_failing_step_raises_its_own_error() -> None:
    def boom() -> None:
        raise ValueError("broken")

    with pytest.raises(ValueError, match="broken"):
        waiting_for("x", boom, Console(file=io.StringIO()), after_s=5.0)


def _failing_app(exc: Exception) -> typer.Typer:
    app = typer.Typer()

    @app.command()
    @clean_errors
    def fail(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
        raise exc

    return app


@pytest.mark.parametrize("as_json", [False, True])
def test_a_timeout_says_to_retry_and_exits_75(as_json: bool) -> None:
    exc = Unavailable("no answer in time; the command may not have been applied, retry it", 2)
    result = CliRunner().invoke(_failing_app(exc), ["--json"] if as_json else [])
    assert result.exit_code == TEMPORARY_EXIT == 75
    assert result.stderr.startswith("error: unavailable: Kafka is slow or unreachable; ")
    assert "retry" in result.stderr
    if as_json:
        problem = orjson.loads(result.stdout)["error"]
        assert (problem["code"], problem["retry_after_s"]) == ("unavailable", 2)
    else:
        assert result.stdout == ""


def test_a_refusal_prints_its_code_and_exits_1() -> None:
    exc = CommandRefused("key_not_revoked", "key key_x is active; revoke it first", 409)
    result = CliRunner().invoke(_failing_app(exc), ["--json"])
    assert result.exit_code == 1
    assert result.stderr == "error: key_not_revoked: key key_x is active; revoke it first\n"
    assert orjson.loads(result.stdout) == {
        "error": {"code": "key_not_revoked", "detail": exc.detail, "status": 409}
    }


# --------------------------------------------------------------------------- the listing


def _listed(name: str, key_id: str, status: KeyStatus, used: datetime | None, n: int) -> Json:
    """A key as `GET /api-keys` answers it (the API's own model, dumped as JSON)."""
    record = replace(_key(status), name=name, key_id=key_id)
    usage = KeyRow(
        key_id=key_id, name=name, key_type="live", access="full", status=status.value,
        hint="pk_live_Ab3x", plan="pro", created_at=AT, created_by="cli",
        revoked_at=None, revoke_reason=None, last_used=used,
        requests_24h=n, requests_7d=n * 7, requests_30d=n * 30,
    )  # fmt: skip
    return KeyOut.of_record(record, usage, AT).model_dump(mode="json")


LISTED = [
    _listed("Production web", "key_A1b2C3d4E5f6G7h8", KeyStatus.ACTIVE, AT, 4_949),
    _listed("Batch [red]exporter[/red]", "key_Z9y8X7w6V5u4T3s2", KeyStatus.REVOKED, None, 0),
    _listed(
        "The partner integration for the EU mobile apps (legacy)",
        "key_Q1w2E3r4T5y6U7i8",
        KeyStatus.ACTIVE,
        AT - timedelta(days=3, hours=2),
        1_234_567,
    ),
]


def _rendered(width: int) -> str:
    console = Console(width=width, record=True, file=io.StringIO())
    console.print(keys_table(LISTED, AT + timedelta(minutes=14), width))
    return console.export_text()


def test_the_keys_table_reads_in_80_columns_with_nothing_cut_short() -> None:
    text = _rendered(80)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80 and "…" not in text
    header = next(line for line in lines if line.startswith("Name"))
    assert header.split() == ["Name", "Key", "ID", "Status", "Last", "used", "24h", "7d", "30d"]
    row = next(line for line in lines if line.startswith("Production web"))
    assert row.split()[2:] == [
        "key_A1b2C3d4E5f6G7h8",
        "active",
        "14m",
        "ago",
        "4.9k",
        "35k",
        "148k",
    ]
    revoked = next(line for line in lines if "key_Z9y8X7w6V5u4T3s2" in line)
    assert revoked.split()[-5:] == ["revoked", "never", "0", "0", "0"]
    names = " ".join(line[: header.index("Key ID")].strip() for line in lines[3:])
    assert "Batch [red]exporter[/red]" in names, "a name is shown as typed, never as markup"
    assert "The partner integration for the EU mobile apps (legacy)" in names  # wrapped
    assert "3d ago" in text and "1.2M" in text and "37M" in text
    words = " ".join(text.split())
    assert "Created, type, access and last-used IP: keypulse keys --json or the console" in words


def test_a_wide_terminal_shows_type_and_created_too() -> None:
    text = _rendered(130)
    header = next(line for line in text.splitlines() if line.startswith("Name"))
    assert "Type" in header and "Created" in header
    assert "2026-05-01" in text and "…" not in text
    assert max(len(line) for line in text.splitlines()) <= 130


@pytest.mark.parametrize(
    ("n", "shown"),
    [(0, "0"), (999, "999"), (1_000, "1.0k"), (4_949, "4.9k"), (9_960, "10k"),
     (49_499, "49k"), (999_499, "999k"), (999_600, "1.0M"), (12_345_678, "12M"),
     (3_000_000_000, "3.0B")],
)  # fmt: skip
def test_counts_are_compact(n: int, shown: str) -> None:
    assert compact(n) == shown and len(shown) <= 4


@pytest.mark.parametrize(
    ("before", "shown"),
    [(timedelta(seconds=59), "just now"), (timedelta(minutes=1), "1m ago"),
     (timedelta(minutes=59, seconds=59), "59m ago"), (timedelta(hours=47), "47h ago"),
     (timedelta(days=2), "2d ago"), (timedelta(days=400), "400d ago")],
)  # fmt: skip
def test_last_use_is_relative(before: timedelta, shown: str) -> None:
    assert ago_short((AT - before).isoformat(), AT) == shown
    assert ago_short(AT - before, AT) == shown
    assert ago_short(None, AT) == "never"
