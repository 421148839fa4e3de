"""The API Keys page (`/console/keys`) in headless Chromium.

Checked against truth kept here: the JSON API's view of the same keys (statuses, names,
expiry after a roll, deletion), the secrets the page showed (the copy button's clipboard,
the hint in the row) and the traffic written into the served app's chDB through the
worker's insert path (request counts, last-used IP, renders today, the sparkline's
points). A create shows the secret once: gone from the DOM once its dialog closes, and
from the page after a reload. A Free account at its live-key limit sees the live option
disabled with the reason and is refused if it posts anyway; a read-only sign-in sees no
write controls and is refused (403) if it posts. No serious axe violations and no console
errors at 1280 and 390 px; screenshots of both.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

import httpx
import pytest
import pytest_asyncio
from clickhouse_connect.driver.client import Client
from kafka import KafkaConsumer, TopicPartition
from playwright.async_api import Browser, Page, expect

from alerting.defaults import default_misuse_rules
from alerting.fingerprint import fingerprint
from alerting.ports import RuleChange
from projections.alert_store import ClickHouseAlertStateStore, ClickHouseRuleStore
from projections.writers import ClickHouseIngestStore, ClickHouseKeyStore
from schemas.alerts import AlertInstance, AlertState, RuleKind
from schemas.codec import decode_key_event, encode
from schemas.plans import Plan
from schemas.requests import RequestBatch, RequestCompleted
from schemas.utc import to_epoch_ms
from streams.worker.ingest_plan import IngestLimits, SourceRecord, plan_ingest
from streams.worker.keys_agent import fold_key_events, restore
from streams.worker.ports import AccountHistory
from tests.browser.browser_support import NARROW, Tab
from tests.browser.console_support import ServedConsole, served_console
from tests.integration.http.api_support import bearer

pytestmark = [
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.kafka,
    pytest.mark.clickhouse,
]

PRO, FREE = "acc_keyspro", "acc_keysfree"
LIMITS = IngestLimits(10_000, 1 << 24, max_future_ms=300_000, max_age_ms=35 * 86_400_000)
SECRET = re.compile(r"^pk_(live|test)_[0-9A-Za-z]{20,}$")
_OFFSETS = count()


@pytest.fixture(scope="module")
def console(
    tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str
) -> Iterator[ServedConsole]:
    accounts: dict[str, tuple[Plan, Sequence[str]]] = {
        PRO: (Plan.PRO, ("admin",)),
        FREE: (Plan.FREE, ("admin", "read_only", "full")),  # 2 live keys: at the limit
    }
    with served_console(tmp_path_factory.mktemp("keys"), kafka_bootstrap, accounts) as served:
        yield served


@pytest_asyncio.fixture(loop_scope="module")
async def tab(browser: Browser, console: ServedConsole) -> AsyncIterator[Tab]:
    opened = await Tab.open(browser, console.base_url)
    await opened.sign_in(console.secret(PRO, "admin"))
    yield opened
    await opened.close()


# --------------------------------------------------------------------------- helpers


def _api(console: ServedConsole, account: str) -> httpx.Client:
    return httpx.Client(
        base_url=console.base_url, headers=bearer(console.secret(account, "admin")), timeout=30
    )


def _create(console: ServedConsole, name: str, key_type: str = "live") -> str:
    with _api(console, PRO) as api:
        response = api.post("/api-keys", json={"name": name, "type": key_type})
        assert response.status_code == 201, response.text
        return str(response.json()["key_id"])


def _key(console: ServedConsole, key_id: str) -> httpx.Response:
    with _api(console, PRO) as api:
        return api.get(f"/api-keys/{key_id}")


def _row(page: Page, key_id: str) -> Any:
    return page.locator(f'tr[data-key-id="{key_id}"]')


async def _menu_action(page: Page, key_id: str, action: str) -> None:
    row = _row(page, key_id)
    await row.locator("details.menu summary").click()
    await row.get_by_role("button", name=action, exact=True).click()


async def _menu_items(page: Page, key_id: str) -> list[str]:
    row = _row(page, key_id)
    await row.locator("details.menu summary").click()
    items = [t.strip() for t in await row.locator(".menu-items button").all_inner_texts()]
    await page.keyboard.press("Escape")
    return items


async def _csrf(page: Page) -> str:
    token = await page.locator('input[name="csrf_token"]').first.get_attribute("value")
    assert token
    return token


# --------------------------------------------------------------------------- tests


async def test_a_new_key_shows_its_secret_once_and_copies_it(
    tab: Tab, console: ServedConsole
) -> None:
    page = tab.page
    await page.get_by_role("button", name="Create key").focus()
    await page.keyboard.press("Enter")  # by keyboard: open, type, submit
    dialog = page.locator("#create-dialog")
    await expect(dialog).to_be_visible()
    await expect(dialog.get_by_label("Live")).to_be_checked()
    await dialog.get_by_label("Name").fill("Production web app")
    async with page.expect_response(lambda r: r.request.method == "POST") as posted:
        await page.keyboard.press("Enter")
    response = await posted.value
    assert response.headers["cache-control"] == "no-store"

    shown = page.locator("#secret-dialog")
    await expect(shown).to_be_visible()
    await expect(shown).to_contain_text("Copy this key now. You won't be able to see it again.")
    secret = (await shown.locator("#new-secret").inner_text()).strip()
    assert SECRET.match(secret) and secret.startswith("pk_live_")
    await shown.get_by_role("button", name="Copy").click()
    await expect(shown.get_by_role("button", name="Copied")).to_be_visible()
    assert await page.evaluate("navigator.clipboard.readText()") == secret

    row = page.locator("tbody tr", has_text="Production web app")
    await expect(row).to_have_count(1)
    key_id = await row.get_attribute("data-key-id")
    assert key_id
    await expect(row).to_contain_text(secret[:12] + "…")  # the hint: prefix + 4 characters
    assert _key(console, key_id).json()["name"] == "Production web app"
    await expect(page.locator("#flashes")).to_contain_text(f"Created {key_id}")

    await page.keyboard.press("Escape")  # closing removes it: the secret leaves the DOM
    await expect(shown).to_have_count(0)
    assert secret not in await page.content()
    await page.reload()
    await expect(_row(page, key_id)).to_be_visible()
    assert secret not in await page.content()
    tab.assert_no_errors()


async def test_rename_revoke_then_delete(tab: Tab, console: ServedConsole) -> None:
    page = tab.page
    key_id = _create(console, "Staging analytics")
    await tab.goto("/keys")
    assert await _menu_items(page, key_id) == ["Rename", "Roll", "Revoke"]  # no Delete yet

    await _menu_action(page, key_id, "Rename")
    rename = page.locator("#rename-dialog")
    await expect(rename.get_by_label("Name")).to_have_value("Staging analytics")
    await rename.get_by_label("Name").fill(" padded ")  # refused: shown in the dialog
    await rename.get_by_role("button", name="Rename key").click()
    await expect(rename.get_by_role("alert")).to_contain_text("starts or ends with whitespace")
    await expect(rename.get_by_label("Name")).to_have_value(" padded ")  # as typed
    assert _key(console, key_id).json()["name"] == "Staging analytics"
    await rename.get_by_label("Name").fill("Staging analytics (EU)")
    await rename.get_by_role("button", name="Rename key").click()
    await expect(rename).to_have_count(0)
    await expect(_row(page, key_id).locator("th a")).to_have_text("Staging analytics (EU)")
    await expect(_row(page, key_id).locator("summary")).to_be_focused()  # back to its menu
    assert _key(console, key_id).json()["name"] == "Staging analytics (EU)"

    await _menu_action(page, key_id, "Revoke")
    revoke = page.locator("#revoke-dialog")
    await expect(revoke).to_contain_text("immediate and permanent")
    await revoke.get_by_label("Reason").select_option("compromised")
    await revoke.get_by_role("button", name="Revoke key").click()
    await expect(_row(page, key_id).locator(".key-status .badge").first).to_have_text("revoked")
    body = _key(console, key_id).json()
    assert (body["status"], body["revoke_reason"]) == ("revoked", "compromised")
    assert await _menu_items(page, key_id) == ["Rename", "Delete"]

    await _menu_action(page, key_id, "Delete")
    await page.locator("#delete-dialog").get_by_role("button", name="Delete key").click()
    await expect(_row(page, key_id)).to_have_count(0)
    await expect(page.get_by_role("button", name="Create key")).to_be_focused()
    assert _key(console, key_id).status_code == 404
    await expect(page.locator("#flashes")).to_contain_text(f"Deleted {key_id}")
    tab.assert_no_errors()


async def test_roll_shows_the_new_secret_and_keeps_the_old_key_for_the_overlap(
    tab: Tab, console: ServedConsole
) -> None:
    page = tab.page
    old = _create(console, "Mobile backend")
    await tab.goto("/keys")
    await _menu_action(page, old, "Roll")
    roll = page.locator("#roll-dialog")
    await expect(roll.get_by_label("1 hour")).to_be_checked()
    await roll.get_by_label("6 hours").check()
    before = datetime.now(UTC)
    await roll.get_by_role("button", name="Roll key").click()
    shown = page.locator("#secret-dialog")
    await expect(shown).to_contain_text("Copy this key now")
    await expect(shown).to_contain_text(f"The old key {old} keeps working until")
    secret = (await shown.locator("#new-secret").inner_text()).strip()
    assert SECRET.match(secret)

    body = _key(console, old).json()
    new = body["replaced_by"]
    assert body["status"] == "active"
    expires = datetime.fromisoformat(body["expires_at"])
    assert before + timedelta(hours=6) - timedelta(seconds=5) <= expires
    assert expires <= datetime.now(UTC) + timedelta(hours=6)
    await shown.get_by_role("button", name="Done").click()
    await expect(shown).to_have_count(0)
    await expect(_row(page, old)).to_contain_text("expiring soon")
    await expect(_row(page, new)).to_contain_text(secret[:12] + "…")
    assert await _menu_items(page, old) == ["Rename", "Revoke"]  # rolled once only
    assert secret not in await page.content()
    tab.assert_no_errors()


async def test_free_plan_limit_and_read_only_sign_in(
    browser: Browser, console: ServedConsole
) -> None:
    admin = await Tab.open(browser, console.base_url)
    await admin.sign_in(console.secret(FREE, "admin"))
    page = admin.page
    await expect(page.locator("#plan-line")).to_have_text(
        "2 of 2 live keys, 0 of 5 test keys and 1 of 5 admin keys on Free"
    )
    await page.get_by_role("button", name="Create key").click()
    dialog = page.locator("#create-dialog")
    await expect(dialog.get_by_label("Live")).to_be_disabled()
    await expect(dialog).to_contain_text("Free allows 2 live keys: revoke one or upgrade the plan")
    await expect(dialog.get_by_label("Test")).to_be_checked()
    await dialog.get_by_label("Name").fill(" padded ")  # refused: said in the dialog, reopened
    await dialog.get_by_role("button", name="Create key").click()
    await expect(dialog.get_by_role("alert")).to_contain_text("starts or ends with whitespace")
    await expect(dialog).to_be_visible()
    await expect(dialog.get_by_label("Name")).to_have_value(" padded ")
    await page.keyboard.press("Escape")
    forced = await page.request.post(
        "/console/keys",
        form={"csrf_token": await _csrf(page), "name": "One too many", "type": "live"},
    )
    assert forced.status == 409
    assert "Free allows 2 live keys: revoke one or upgrade the plan" in await forced.text()
    with _api(console, FREE) as api:
        assert api.get("/account").json()["active"]["live"] == 2
    admin.assert_no_errors()
    await admin.close()

    reader = await Tab.open(browser, console.base_url)
    await reader.sign_in(console.secret(FREE, "read_only"))
    page = reader.page
    await expect(page.locator("tbody tr")).to_have_count(3)
    await expect(page.get_by_role("button", name="Create key")).to_have_count(0)
    await expect(page.locator("details.menu")).to_have_count(0)
    await expect(page.locator("dialog")).to_have_count(0)
    assert await page.locator('form[method="post"]').count() == 1  # sign-out only
    token = await _csrf(page)  # the sign-out form's: a valid session token
    target = console.key_id(FREE, "full")
    for path, form in (
        ("/console/keys", {"name": "Sneaky", "type": "test"}),
        (f"/console/keys/{target}/revoke", {}),
    ):
        refused = await page.request.post(path, form={"csrf_token": token, **form})
        assert refused.status == 403
        assert "read-only" in await refused.text()
    with _api(console, FREE) as api:
        assert api.get(f"/api-keys/{target}").json()["status"] == "active"
        assert api.get("/account").json()["active"]["test"] == 0
    reader.assert_no_errors()
    await reader.close()


# --------------------------------------------------------------------------- usage


def _request(key: str, at: datetime, status: int, ip: str, render: bool) -> RequestCompleted:
    return RequestCompleted(
        key_id=key,
        account_id=PRO,
        occurred_at=at,
        method="GET",
        route="/v1/render" if render else "/v1/templates",
        status=status,
        latency_ms=12.5,
        client_ip=ip,
        bytes_out=100,
        is_render=render,
    )


def _traffic(live: str, test: str, now: datetime) -> list[RequestCompleted]:
    """The live key: requests 2 h, 3 days and 20 days ago (far from every window's edge),
    newest from 198.51.100.7; the test key: 120 renders within today (UTC)."""
    events = [
        _request(live, now - timedelta(hours=2, minutes=i), 200, "198.51.100.7", False)
        for i in range(30)
    ]
    events += [
        _request(live, now - timedelta(days=3, minutes=i), 500, "203.0.113.9", False)
        for i in range(20)
    ]
    events += [
        _request(live, now - timedelta(days=20, minutes=i), 200, "203.0.113.9", False)
        for i in range(40)
    ]
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    today = min(now - midnight, timedelta(minutes=30)) / 130
    events += [_request(test, now - today * (i + 1), 200, "192.0.2.44", True) for i in range(120)]
    return events


def _write(client: Client, topic: str, events: Sequence[RequestCompleted]) -> None:
    """As the worker writes: planned blocks, then their rows."""
    wall = to_epoch_ms(datetime.now(UTC))
    record = SourceRecord(
        0, next(_OFFSETS), None, encode(RequestBatch.from_events(list(events))), wall
    )
    plan = plan_ingest(topic, [record], {}, LIMITS)
    assert not plan.rejected, plan.rejected
    store = ClickHouseIngestStore(client)
    for planned in plan.planned:
        store.write(planned.block)


def _key_events(bootstrap: str, topic: str) -> list[bytes]:
    """Every record of the key-events topic, read up to its end offsets (no idle wait)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        ends = consumer.end_offsets(parts)
        values: list[bytes] = []
        while any(consumer.position(p) < ends[p] for p in parts):
            for batch in consumer.poll(timeout_ms=1000).values():
                values += [m.value for m in batch]
        return values
    finally:
        consumer.close()


def _project_keys(console: ServedConsole, bootstrap: str) -> None:
    """What the worker's keys agent writes (the served console runs none): the `keys`
    projection the listing's usage numbers are read for, folded from the topic."""
    events = [decode_key_event(v) for v in _key_events(bootstrap, console.topics.key_events)]
    states = {e.account_id: restore(AccountHistory(e.account_id)) for e in events}
    changes = fold_key_events(states, events)
    assert not changes.anomalies
    console.api.runtime.pool.with_client(lambda c: ClickHouseKeyStore(c).save(changes))


def _fire(client: Client, key_id: str, kinds: Sequence[RuleKind], now: datetime) -> None:
    """The account's default misuse rules, and a firing instance of `kinds` for the key."""
    rules = {r.kind: r for r in default_misuse_rules(PRO)}
    changes = [RuleChange(r.rule_id, PRO, r, i + 1, now) for i, r in enumerate(rules.values())]
    ClickHouseRuleStore(client).apply(changes)
    instances = [
        AlertInstance(
            fingerprint=fingerprint(rules[kind].rule_id, key_id),
            rule_id=rules[kind].rule_id,
            account_id=PRO,
            key_id=key_id,
            state=AlertState.FIRING,
            since=now,
            episode=1,
            started_at=now,
            fired_at=now,
        )
        for kind in kinds
    ]
    ClickHouseAlertStateStore(client).save([], instances, token=f"keys-page-{key_id}")


async def test_usage_badges_accessibility_and_screenshots(
    tab: Tab, browser: Browser, console: ServedConsole, kafka_bootstrap: str
) -> None:
    live = _create(console, "Checkout service")
    test = _create(console, "Preview renderer", "test")
    _project_keys(console, kafka_bootstrap)
    now = datetime.now(UTC)
    events = _traffic(live, test, now)
    pool = console.api.runtime.pool
    pool.with_client(lambda c: _write(c, console.topics.requests, events))
    pool.with_client(lambda c: _fire(c, live, (RuleKind.UNKNOWN_IP, RuleKind.ERROR_PATTERN), now))

    page = tab.page
    await tab.goto("/keys")
    row = _row(page, live)
    for window, cell in ((timedelta(hours=24), 7), (timedelta(days=7), 8), (timedelta(days=30), 9)):
        truth = sum(1 for e in events if e.key_id == live and now - e.occurred_at < window)
        await expect(row.locator(f"td:nth-child({cell})")).to_have_text(f"{truth:,}")
    await expect(row).to_contain_text("198.51.100.7")
    await expect(row).to_contain_text("2 h ago")
    for badge in ("active", "unknown IP", "elevated errors"):
        await expect(row.locator(".key-status")).to_contain_text(badge)
    await expect(_row(page, test).locator(".key-status")).to_contain_text("over quota")
    await expect(row.locator(".key-status")).not_to_contain_text("over quota")

    points = (await row.locator("svg.spark polyline").get_attribute("points") or "").split()
    assert len(points) == 30
    heights = [float(p.split(",")[1]) for p in points]
    per_day = [0] * 30
    today = now.date()
    for e in events:
        age = (today - e.occurred_at.date()).days
        if e.key_id == live and age < 30:
            per_day[29 - age] += 1
    assert [h < 26.0 for h in heights] == [n > 0 for n in per_day]  # used days rise
    assert heights.index(min(heights)) == per_day.index(max(per_day))

    assert await tab.axe_violations() == []
    await page.get_by_role("button", name="Create key").click()
    assert await tab.axe_violations() == []
    await page.keyboard.press("Escape")
    await tab.screenshot("keys-1280")
    tab.assert_no_errors()

    narrow = await Tab.open(browser, console.base_url, viewport=NARROW)
    await narrow.sign_in(console.secret(PRO, "admin"))
    await expect(_row(narrow.page, live).locator("svg.spark")).to_be_hidden()  # .hide-narrow
    await expect(_row(narrow.page, live).locator("th a")).to_be_visible()
    assert await narrow.page.locator(".table-wrap").evaluate(  # the table scrolls, not the page
        "w => getComputedStyle(w).overflowX === 'auto' && w.scrollWidth > w.clientWidth"
    )
    assert await narrow.page.evaluate("document.documentElement.scrollWidth <= innerWidth")
    assert await narrow.axe_violations() == []
    await narrow.screenshot("keys-390")
    narrow.assert_no_errors()
    await narrow.close()
