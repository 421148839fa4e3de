"""The key page (`/console/keys/{id}`) in headless Chromium over known traffic: request
events (statuses, latencies, client IPs) and verification outcomes written into the served
app's chDB through the worker's insert path (`plan_ingest` -> `ClickHouseIngestStore`, on
a client of the app's own pool: one chDB per process). The cards, the charts' data, the
address and outcome tables are compared with the truth computed here from the same
events; a key rolled through the JSON API shows its roll status, first unused, then
"still used" after a request of the old key; another account's key is a 404. Also: the
charts are drawn (pixels on each canvas), the window switches by keyboard, no serious axe
violations and no console errors at 1280 and 390 px, screenshots of both."""

from __future__ import annotations

import asyncio
import json
import re
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import count, pairwise
from typing import Any

import httpx
import pytest
import pytest_asyncio
from clickhouse_connect.driver.client import Client
from playwright.async_api import Browser, Page, expect

from infra.console import assets
from projections.windows import Window
from projections.writers import ClickHouseIngestStore
from schemas.codec import encode
from schemas.plans import Plan
from schemas.requests import (
    OutcomeBatch,
    OutcomeRecorded,
    RequestBatch,
    RequestCompleted,
    VerificationOutcome,
)
from schemas.utc import to_epoch_ms
from streams.worker.ingest_plan import IngestLimits, SourceRecord, plan_ingest
from tests.browser.browser_support import NARROW, SERIOUS, Tab
from tests.browser.console_support import ServedConsole, served_console
from tests.integration.http.api_support import bearer, in_window, nearest_rank

pytestmark = [
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.kafka,
    pytest.mark.clickhouse,
]

ACCOUNT, OTHER = "acc_keypage", "acc_keyother"
LATENCY_TOLERANCE_MS = 3.05
"""t-digest against the exact nearest rank on latencies spread 1..100 ms, plus the page's
rounding to 0.1 ms."""
RECENT_IPS = ("198.51.100.1", "198.51.100.2", "2001:db8::1")
LIMITS = IngestLimits(10_000, 1 << 24, max_future_ms=300_000, max_age_ms=35 * 86_400_000)
_OFFSETS = count()


def _request(key: str, at: datetime, status: int, latency: float, ip: str) -> RequestCompleted:
    return RequestCompleted(
        key_id=key,
        account_id=ACCOUNT,
        occurred_at=at,
        method="GET",
        route="/v1/render",
        status=status,
        latency_ms=latency,
        client_ip=ip,
        bytes_out=100,
        is_render=True,
    )


def _traffic(key: str, now: datetime) -> list[RequestCompleted]:
    """100 requests 1-4.3 h ago from three addresses, 60 three days ago, 60 twenty days
    ago: ages far from every window's edges; latencies spread over 1..100 ms."""
    events = []
    for i in range(220):
        if i < 100:
            at, ip = now - timedelta(hours=1, minutes=2 * i), RECENT_IPS[i % 3]
        elif i < 160:
            at, ip = now - timedelta(days=3, minutes=i), "203.0.113.50"
        else:
            at, ip = now - timedelta(days=20, minutes=i), ("192.0.2.9", RECENT_IPS[0])[i % 2]
        status = 503 if i % 10 == 0 else 404 if i % 7 == 0 else 429 if i % 13 == 0 else 200
        events.append(_request(key, at, status, float((i * 37) % 100 + 1), ip))
    return events


def _outcomes(key: str, now: datetime) -> list[OutcomeRecorded]:
    def one(outcome: VerificationOutcome, age: timedelta, n: int = 1) -> OutcomeRecorded:
        return OutcomeRecorded(
            outcome=outcome,
            key_id=key,
            account_id=ACCOUNT,
            client_ip="198.51.100.1",
            count=n,
            occurred_at=now - age,
        )

    hour, day = timedelta(hours=1), timedelta(days=1)
    return [
        one(VerificationOutcome.VALID, 2 * hour, 5),
        one(VerificationOutcome.VALID, 3 * hour, 7),
        one(VerificationOutcome.REVOKED, 4 * hour),
        one(VerificationOutcome.REVOKED, 5 * hour),
        one(VerificationOutcome.EXPIRED, 6 * hour),
        *[one(VerificationOutcome.QUOTA_EXCEEDED, 3 * day) for _ in range(3)],
        one(VerificationOutcome.IP_NOT_ALLOWED, 10 * day),
        one(VerificationOutcome.VALID, 12 * day, 4),
    ]


def _write(
    client: Client,
    topic: str,
    requests: Sequence[RequestCompleted],
    outcomes: Sequence[OutcomeRecorded],
) -> None:
    """As the worker writes: planned blocks, their rows, then their outcome rows."""
    wall = to_epoch_ms(datetime.now(UTC))
    values = [encode(RequestBatch.from_events(list(requests)))] if requests else []
    values += [encode(OutcomeBatch.from_events(list(outcomes)))] if outcomes else []
    records = [SourceRecord(0, next(_OFFSETS), None, v, wall) for v in values]
    plan = plan_ingest(topic, records, {}, LIMITS)
    assert not plan.rejected, plan.rejected
    store = ClickHouseIngestStore(client)
    for planned in plan.planned:
        store.write(planned.block)
        store.write_outcomes(planned.block.token, planned.outcomes, planned.outcome_count)


@dataclass
class Traffic:
    console: ServedConsole
    key_id: str
    events: list[RequestCompleted]
    outcomes: list[OutcomeRecorded]

    def write(
        self, requests: Sequence[RequestCompleted], outcomes: Sequence[OutcomeRecorded] = ()
    ) -> None:
        topic = self.console.topics.requests
        self.console.api.runtime.pool.with_client(lambda c: _write(c, topic, requests, outcomes))


@pytest.fixture(scope="module")
def traffic(tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str) -> Iterator[Traffic]:
    accounts: dict[str, tuple[Plan, Sequence[str]]] = {
        ACCOUNT: (Plan.PRO, ("admin", "read_only", "full")),
        OTHER: (Plan.FREE, ("admin",)),
    }
    data = tmp_path_factory.mktemp("keypage")
    with served_console(data, kafka_bootstrap, accounts) as served:
        key = served.key_id(ACCOUNT, "full")
        now = datetime.now(UTC)
        found = Traffic(served, key, _traffic(key, now), _outcomes(key, now))
        found.write(found.events, found.outcomes)
        yield found


@pytest_asyncio.fixture(loop_scope="module")
async def tab(browser: Browser, traffic: Traffic) -> AsyncIterator[Tab]:
    opened = await Tab.open(browser, traffic.console.base_url)
    await opened.sign_in(traffic.console.secret(ACCOUNT, "read_only"))
    yield opened
    await opened.close()


# --------------------------------------------------------------------------- truth


def _in(traffic: Traffic, window: Window) -> list[RequestCompleted]:
    now = datetime.now(UTC)
    return [e for e in traffic.events if in_window(e, window, now)]


def _ips(traffic: Traffic, window: Window) -> list[tuple[str, int]]:
    """(address, requests over the UTC days from the window's first) of the addresses used
    within the window, newest first."""
    now = datetime.now(UTC)
    first_day = (now - window.length).date()
    last: dict[str, datetime] = {}
    requests: dict[str, int] = defaultdict(int)
    for e in traffic.events:
        ip = str(e.client_ip)
        if e.occurred_at.date() >= first_day:
            requests[ip] += 1
        if in_window(e, window, now):
            last[ip] = max(last.get(ip, e.occurred_at), e.occurred_at)
    return [(ip, requests[ip]) for ip in sorted(last, key=lambda ip: last[ip], reverse=True)]


def _outcome_truth(traffic: Traffic, window: Window) -> dict[str, int]:
    now = datetime.now(UTC)
    found: dict[str, int] = defaultdict(int)
    for o in traffic.outcomes:
        if now - o.occurred_at < window.length:
            found[o.outcome.value] += o.count
    return found


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} %"


async def _text(page: Page, selector: str) -> str:
    return (await page.locator(selector).inner_text()).strip()


async def _number(page: Page, selector: str) -> float:
    return float((await _text(page, selector)).replace(",", "").removesuffix(" ms"))


async def _check_window(page: Page, traffic: Traffic, window: Window) -> None:
    """The cards, the charts' data and the tables of `window` equal the truth."""
    events = _in(traffic, window)
    for w in Window:
        assert await _number(page, f"#card-requests-{w.value} .value") == len(_in(traffic, w))
    n = len(events)
    e4 = sum(1 for e in events if 400 <= e.status < 500)
    e5 = sum(1 for e in events if e.status >= 500)
    assert 0 < e4 < n and 0 < e5 < n
    for name, errors in (("4xx", e4), ("5xx", e5), ("all", e4 + e5)):
        assert await _text(page, f"#card-errors-{name} .value") == _percent(errors, n)
        assert await _text(page, f"#card-errors-{name} .detail") == f"{errors} of {n}"
    latencies = [e.latency_ms for e in events]
    for q in (50, 95, 99):
        shown = await _number(page, f"#card-latency-p{q} .value")
        assert shown == pytest.approx(nearest_rank(latencies, q / 100), abs=LATENCY_TOLERANCE_MS)

    series = json.loads(await page.locator("#key-series").text_content() or "{}")
    step = series["step_s"]
    assert sum(series["requests"]) == n
    assert (sum(series["errors_4xx"]), sum(series["errors_5xx"])) == (e4, e5)
    assert all(b - a == step for a, b in pairwise(series["x"]))
    buckets = window.length.total_seconds() / step
    assert buckets <= len(series["x"]) <= buckets + 1
    for chart in ("requests", "errors", "latency"):
        box = page.locator(f"#chart-{chart}")
        await expect(box).to_have_attribute("data-drawn", str(len(series["x"])))
        assert await _painted(box.locator("canvas").first) > 500, chart
        label = await page.locator(f"#chart-{chart}-title").inner_text()
        assert window.value not in label and label  # labelled in words ("24 hours")
        assert await _text(page, f"#chart-{chart}-summary")

    rows = page.locator("#ips tbody tr")
    truth = _ips(traffic, window)
    assert await rows.count() == len(truth)
    for i, (ip, requests) in enumerate(truth):
        assert await rows.nth(i).locator("td").nth(0).inner_text() == ip
        assert await rows.nth(i).locator("td").nth(1).inner_text() == f"{requests:,}"

    outcomes = _outcome_truth(traffic, window)
    assert outcomes["valid"] and outcomes["revoked"]
    for outcome in ("valid", "revoked", "expired", "ip_not_allowed", "quota_exceeded"):
        cell = page.locator(f'#outcomes tr[data-outcome="{outcome}"] td.num')
        assert await cell.inner_text() == str(outcomes.get(outcome, 0)), outcome


async def _axe(tab: Tab) -> list[dict[str, Any]]:
    """`Tab.axe_violations`, with axe-core evaluated instead of added as a script tag:
    Playwright's `add_script_tag` inlines the file, which the console's CSP
    (`script-src 'self'`) blocks; an evaluation is outside the page's CSP."""
    await tab.page.evaluate(assets.test_vendor_file("axe.min.js").read_text())
    result: dict[str, Any] = await tab.page.evaluate("() => axe.run(document)")
    return [v for v in result["violations"] if v.get("impact") in SERIOUS]


async def _painted(canvas: Any) -> int:
    """Pixels not left transparent on a canvas."""
    return int(
        await canvas.evaluate(
            "c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
            " let n = 0; for (let i = 3; i < d.length; i += 4) { if (d[i]) n++; } return n; }"
        )
    )


# --------------------------------------------------------------------------- tests


async def test_a_read_only_user_sees_the_keys_traffic_in_each_window(
    tab: Tab, traffic: Traffic
) -> None:
    page = tab.page
    await tab.goto(f"/keys/{traffic.key_id}")
    await expect(page.get_by_role("heading", level=1)).to_have_text("name of full")
    await expect(page.locator(".key-fields")).to_contain_text(traffic.key_id)
    await expect(page.locator(".key-fields")).to_contain_text("pk_live_")
    await expect(page.locator("#key-status")).to_have_text("active")
    assert await page.locator("main form").count() == 0  # a read page: no write controls
    await expect(page.get_by_role("link", name="24 hours")).to_have_attribute(
        "aria-current", "true"
    )
    await _check_window(page, traffic, Window.H24)
    assert await _axe(tab) == []
    await tab.screenshot("key-detail-1280")

    seven = page.get_by_role("link", name="7 days")  # switched by keyboard
    await seven.focus()
    await page.keyboard.press("Enter")
    await page.wait_for_url("**window=7d")
    await expect(page.get_by_role("heading", name="Usage over the last 7 days")).to_be_visible()
    await expect(page.get_by_role("link", name="7 days")).to_have_attribute("aria-current", "true")
    await _check_window(page, traffic, Window.D7)

    await page.get_by_role("link", name="30 days").click()
    await page.wait_for_url("**window=30d")
    await _check_window(page, traffic, Window.D30)
    summary = page.locator("details.chart-data summary")
    await summary.focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("#series-table")).to_be_visible()
    tab.assert_no_errors()


async def test_a_rolled_key_shows_whether_the_old_key_is_still_used(
    browser: Browser, traffic: Traffic
) -> None:
    console = traffic.console
    admin = bearer(console.secret(ACCOUNT, "admin"))
    async with httpx.AsyncClient(base_url=console.base_url, headers=admin, timeout=30) as api:
        made = await api.post("/api-keys", json={"name": "Rolled client", "type": "live"})
        assert made.status_code == 201, made.text
        old = made.json()["id"]
        rolled = await api.post(f"/api-keys/{old}/roll", json={"overlap": "24h"})
        assert rolled.status_code == 201, rolled.text
        new = rolled.json()["id"]
    tab = await Tab.open(browser, console.base_url)
    try:
        await tab.sign_in(console.secret(ACCOUNT, "admin"))
        page = tab.page
        await tab.goto(f"/keys/{old}")
        rotation = page.locator("#rotation")
        await expect(rotation).to_contain_text(f"Rolled to {new} on")
        await expect(rotation).to_contain_text("This old key stays valid until")
        await expect(rotation).to_contain_text("Not used since the roll.")

        used = _request(old, datetime.now(UTC), 200, 5.0, "203.0.113.7")
        await asyncio.to_thread(traffic.write, [used])
        await page.reload()
        await expect(rotation).to_contain_text("Still used")
        await expect(rotation).to_contain_text("from 203.0.113.7")
        await expect(page.locator(".key-fields")).to_contain_text("from 203.0.113.7")

        await rotation.get_by_role("link", name=new).click()
        await page.wait_for_url(f"**/console/keys/{new}")
        await expect(rotation).to_contain_text(f"Made by rolling {old} on")
        await expect(rotation).to_contain_text("The old key was still used")
        await expect(rotation).to_contain_text("from 203.0.113.7")
        tab.assert_no_errors()
    finally:
        await tab.close()


async def test_narrow_screens_and_keys_not_of_the_account(
    browser: Browser, traffic: Traffic
) -> None:
    console = traffic.console
    tab = await Tab.open(browser, console.base_url, viewport=NARROW)
    try:
        await tab.sign_in(console.secret(ACCOUNT, "read_only"))
        page = tab.page
        await tab.goto(f"/keys/{traffic.key_id}")
        for chart in ("requests", "errors", "latency"):
            box = page.locator(f"#chart-{chart}")
            await expect(box).to_have_attribute("data-drawn", re.compile(r"^\d+$"))
            width = await box.locator("canvas").first.evaluate(
                "c => c.getBoundingClientRect().right"
            )
            assert width <= NARROW["width"], (chart, width)
        scroll = await page.evaluate("() => document.documentElement.scrollWidth")
        assert scroll <= NARROW["width"], scroll
        assert await _axe(tab) == []
        await tab.screenshot("key-detail-390")

        other_key = console.key_id(OTHER, "admin")
        for key in (other_key, "key_doesnotexist"):
            response = await page.goto(f"/console/keys/{key}")
            assert response is not None and response.status == 404, key
            await expect(page.get_by_role("heading", level=1)).to_have_text("Key not found")
            await expect(page.locator("main")).not_to_contain_text("name of admin")
        tab.errors = [e for e in tab.errors if "404" not in e]  # the 404 answer itself
        tab.assert_no_errors()
    finally:
        await tab.close()
