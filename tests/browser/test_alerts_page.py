"""The Alerts page in headless Chromium, over a running worker (rules agent, evaluator,
notifier) and a real local webhook receiver: an admin adds rules through the page (the
webhook signing secret shown once), traffic fires them, the page shows them firing and
their deliveries (one delivered, one dead), a test notification reaches the receiver
signed with the shown secret (checked with standardwebhooks), the dead delivery is
replayed, a rule is deleted; a read-only user sees it all without write controls and the
server refuses their posts. The truth is the receiver's requests and the JSON API."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
import pytest_asyncio
from aiohttp import web
from playwright.async_api import Browser, Locator, Page, ViewportSize, expect
from standardwebhooks import Webhook

from alerting.fingerprint import fingerprint
from infra.console import assets
from infra.kafka.admin import ensure_topics
from infra.tools.receivers import HttpReceiver, Received, serving_http
from schemas.keys import KeyType
from schemas.topics import TopicNames
from tests.browser.browser_support import NARROW, SERIOUS, WIDE, Tab
from tests.eventually import eventually
from tests.integration.alerting.alert_e2e_support import alert_settings, record_traffic
from tests.integration.http.api_support import (
    Api,
    bearer,
    chain_tenant,
    role_chain,
    serving,
    serving_settings,
)
from tests.samples.keys import publish

pytestmark = pytest.mark.asyncio(loop_scope="module")

ACCOUNT = "acc_alerts"
ROLES = ("admin", "read_only")
USAGE_KEY = "key_alertsweb01"
USAGE_NAME = "Production web"
STATUSES = [200] * 15 + [500] * 5
"""20 requests, 5 of them errors (25%): above both rules' thresholds."""
WAIT_MS = 20_000
SPIKE_RULE = {
    "name": "Usage spikes",
    "scope": {"type": "account"},
    "kind": "usage_spike",
    "channels": [{"type": "email", "to": ["security@example.com"]}],
}
"""Made through the JSON API: a misuse detector, learning while keys have no history."""


@dataclass
class Site:
    api: Api
    receiver: HttpReceiver
    topics: TopicNames
    bootstrap: str
    gone_status: int = 400
    """What the receiver answers on /gone (400: a permanent failure, the delivery dies)."""

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.api.settings.api.port}"

    def secret(self, role: str) -> str:
        return self.api.secrets[f"alerts:{role}"]

    def received(self, path: str) -> list[Received]:
        return [r for r in self.receiver.received if r.path == path]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def site(
    tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str
) -> AsyncIterator[Site]:
    prefix = f"t{uuid.uuid4().hex[:10]}."
    ensure_topics(kafka_bootstrap, prefix)
    topics = TopicNames.with_prefix(prefix)
    chain = role_chain(ACCOUNT, ROLES)
    chain.create_key(USAGE_KEY, USAGE_NAME, KeyType.LIVE)
    publish(kafka_bootstrap, topics.key_events, chain.events)
    data = tmp_path_factory.mktemp("alerts")
    settings = serving_settings(alert_settings(data, kafka_bootstrap, prefix))
    secrets = chain_tenant(chain, ROLES).secrets()
    async with serving_http() as receiver, serving(settings, secrets) as api:
        site = Site(api, receiver, topics, kafka_bootstrap)

        async def answer(request: web.Request, _: bytes) -> web.StreamResponse:
            if request.path == "/gone":
                return web.Response(status=site.gone_status, text="no such hook")
            return web.Response(text="ok")

        receiver.default = answer
        spikes = await api.client.post(
            "/alert-rules", json=SPIKE_RULE, headers=bearer(site.secret("admin"))
        )
        assert spikes.status_code == 202, spikes.text
        yield site


@pytest_asyncio.fixture(loop_scope="module")
async def admin(browser: Browser, site: Site) -> AsyncIterator[Tab]:
    tab = await Tab.open(browser, site.base_url, WIDE)
    await tab.sign_in(site.secret("admin"))
    yield tab
    await tab.close()


def rule_row(page: Page, name: str) -> Locator:
    return page.locator("#rules tbody tr", has_text=name)


async def add_rule(page: Page, fields: dict[str, str], selects: dict[str, str]) -> None:
    await page.get_by_role("button", name="Add alert").first.click()
    dialog = page.locator("dialog#add-alert")
    await expect(dialog).to_be_visible()
    for label, value in selects.items():
        await dialog.get_by_label(label, exact=True).select_option(value)
    for label, value in fields.items():
        await dialog.get_by_label(label, exact=True).fill(value)
    await dialog.get_by_role("button", name="Add alert").click()


async def shown_secret(page: Page) -> str:
    """The signing secret in the shown-once dialog; closing it removes it from the page."""
    dialog = page.locator("dialog#webhook-secret")
    await expect(dialog).to_be_visible()
    secret = (await dialog.locator("code#webhook-secret-value").inner_text()).strip()
    await dialog.get_by_role("button", name="Done").click()
    await expect(page.locator("#webhook-secret")).to_have_count(0)
    return secret


async def api_rules(site: Site) -> list[dict[str, object]]:
    answer = await site.api.client.get("/alert-rules", headers=bearer(site.secret("admin")))
    assert answer.status_code == 200, answer.text
    rules: list[dict[str, object]] = answer.json()["data"]
    return rules


async def axe(tab: Tab) -> list[dict[str, Any]]:
    """`Tab.axe_violations` with axe-core evaluated, not added as a script tag (which the
    console's CSP, `script-src 'self'`, blocks; an evaluation is outside it)."""
    await tab.page.evaluate(assets.test_vendor_file("axe.min.js").read_text())
    result: dict[str, Any] = await tab.page.evaluate("() => axe.run(document)")
    return [v for v in result["violations"] if v.get("impact") in SERIOUS]


def verified(secret: str, request: Received) -> dict[str, object]:
    """The webhook's payload once its Standard Webhooks signature checks out."""
    payload: dict[str, object] = Webhook(secret).verify(request.body, request.headers)
    return payload


async def test_admin_adds_rules_sees_them_fire_tests_replays_and_deletes(
    admin: Tab, site: Site
) -> None:
    page = admin.page
    await admin.goto("/alerts")
    spikes_row = rule_row(page, "Usage spikes")
    await expect(spikes_row).to_contain_text("Email: security@example.com", timeout=WAIT_MS)
    opener = page.get_by_role("button", name="Add alert").first  # by keyboard
    await opener.focus()
    await page.keyboard.press("Enter")
    dialog = page.locator("dialog#add-alert")
    await expect(dialog).to_be_visible()
    assert await dialog.evaluate("d => d.contains(document.activeElement)")
    await page.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()

    # An invalid rule is refused next to the form, which keeps what was entered.
    await add_rule(
        page,
        {
            "Name": "Errors on the account",
            "Threshold": "150",
            "Window": "5m",
            "At least (requests)": "10",
            "Webhook URL": site.receiver.url("/gone"),
        },
        {"Alert when": "error_rate"},
    )
    error = page.locator("#add-alert-error")
    await expect(error).to_contain_text("error_rate thresholds are percentages 0..100")
    assert await page.get_by_label("Name", exact=True).input_value() == "Errors on the account"
    violations = await axe(admin)  # the form, open, with its error
    assert violations == [], violations
    await page.get_by_label("Threshold", exact=True).fill("5")
    await page.locator("dialog#add-alert").get_by_role("button", name="Add alert").click()
    gone_secret = await shown_secret(page)

    await add_rule(
        page,
        {
            "Name": "Web traffic",
            "Threshold": "10",
            "Window": "1h",
            "Webhook URL": site.receiver.url("/hook"),
        },
        {"Watch": USAGE_KEY},
    )
    secret = await shown_secret(page)
    assert secret.startswith("whsec_") and secret != gone_secret
    await expect(page.locator("#flashes")).to_contain_text("Rule “Web traffic” added")

    # Both rules show (the list waits for the rules agent), secrets masked.
    web_row, errors_row = rule_row(page, "Web traffic"), rule_row(page, "Errors on the account")
    await expect(web_row).to_contain_text("requests > 10 requests over 1 h", timeout=WAIT_MS)
    await expect(web_row).to_contain_text(f"{USAGE_NAME} ({USAGE_KEY})")
    masked = f"(secret whsec_…{secret[-4:]})"  # sealed at rest, shown by its hint
    await expect(web_row).to_contain_text(f"Webhook {site.receiver.url('/hook')} {masked}")
    await expect(errors_row).to_contain_text(
        "error rate > 5% over 5 min, at least 10 requests", timeout=WAIT_MS
    )
    await expect(errors_row).to_contain_text("Whole account")
    assert secret not in await page.content() and gone_secret not in await page.content()
    truth = {str(r["name"]): r for r in await api_rules(site)}
    assert sorted(truth) == ["Errors on the account", "Usage spikes", "Web traffic"]
    web_id, errors_id = (
        str(truth["Web traffic"]["rule_id"]),
        str(truth["Errors on the account"]["rule_id"]),
    )

    # Traffic that breaches both: firing, and their deliveries (one delivered, one dead).
    await asyncio.to_thread(
        record_traffic, site.bootstrap, site.topics.requests, USAGE_KEY, ACCOUNT, STATUSES
    )
    await eventually(lambda: site.received("/hook") and site.received("/gone"), 30, "webhooks")
    [fired] = site.received("/hook")
    assert fired.headers["webhook-id"] == f"{fingerprint(web_id, USAGE_KEY)}.1.firing"
    assert verified(secret, fired)["type"] == "alert.firing"
    verified(gone_secret, site.received("/gone")[0])

    async def shown_firing() -> bool:
        await page.reload()
        firing = page.locator("#rules tbody tr[data-state='firing']")
        dead = page.locator("#deliveries tr[data-status='dead']")
        states = await page.locator("#rules tbody tr").evaluate_all(
            "rows => rows.map(r => r.dataset.state)"
        )
        assert sorted(states) == ["firing", "firing", "learning"], states
        return await firing.count() == 2 and await dead.count() == 1

    await eventually(shown_firing, 30, "both rules firing and the dead delivery on the page")
    await expect(web_row.locator(".badge")).to_have_text("firing")
    delivered = page.locator("#deliveries tr[data-status='delivered'][data-kind='firing']")
    await expect(delivered).to_contain_text("Web traffic")
    await expect(delivered).to_contain_text(site.receiver.url("/hook"))
    dead = page.locator("#deliveries tr[data-status='dead']")
    await expect(dead).to_contain_text("Errors on the account")
    history = page.locator("#history tbody tr[data-to-state='firing']")
    await expect(history).to_have_count(2)
    await expect(history.filter(has_text="Web traffic")).to_contain_text(
        re.compile(r"\d+ requests")
    )

    await admin.screenshot("alerts-1280")
    violations = await axe(admin)
    assert violations == [], violations
    await page.set_viewport_size(ViewportSize(width=NARROW["width"], height=NARROW["height"]))
    width = await page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= NARROW["width"], width
    await admin.screenshot("alerts-390")
    violations = await axe(admin)
    assert violations == [], violations
    await page.set_viewport_size(ViewportSize(width=WIDE["width"], height=WIDE["height"]))

    # A test notification reaches the receiver, signed with the secret shown once.
    await web_row.get_by_role("button", name="Send test notification for Web traffic").click()
    await expect(page.locator("#flashes")).to_contain_text("Test notification of “Web traffic”")
    test_row = page.locator("#deliveries tr[data-kind='test']")
    await expect(test_row).to_have_attribute("data-status", "delivered", timeout=WAIT_MS)
    tests = [r for r in site.received("/hook") if r.headers["webhook-id"].startswith("test.")]
    assert len(tests) == 1
    payload = verified(secret, tests[0])
    data = payload["data"]
    assert isinstance(data, dict)
    assert data["rule"]["name"] == "TEST: Web traffic"
    assert "Test notification sent from the console" in str(data["evidence"])

    # The dead delivery, replayed once its endpoint works: delivered on the second attempt.
    site.gone_status = 200
    dead_id = await dead.get_attribute("data-delivery-id")
    await dead.get_by_role("button", name=re.compile("^Replay delivery")).click()
    replayed = page.locator(f"#delivery-{dead_id}")
    await expect(replayed).to_have_attribute("data-status", "delivered", timeout=WAIT_MS)
    await expect(replayed.locator("td.num")).to_have_text("2")
    assert len(site.received("/gone")) == 2
    assert orjson.loads(site.received("/gone")[1].body)["type"] == "alert.firing"

    # Deleting a rule: confirmed in a dialog, gone from the list once the agent applied it.
    await errors_row.get_by_role("button", name="Delete rule Errors on the account").click()
    confirm = page.locator(f"dialog#delete-{errors_id}")
    await confirm.get_by_role("button", name="Delete rule").click()
    await expect(errors_row).to_have_count(0, timeout=WAIT_MS)
    assert sorted(str(r["name"]) for r in await api_rules(site)) == ["Usage spikes", "Web traffic"]
    await eventually(lambda: len(site.received("/gone")) == 3, 30, "the resolved webhook")
    assert orjson.loads(site.received("/gone")[2].body)["type"] == "alert.resolved"
    admin.assert_no_errors()


async def test_read_only_sees_everything_and_changes_nothing(browser: Browser, site: Site) -> None:
    tab = await Tab.open(browser, site.base_url, NARROW)
    try:
        await tab.sign_in(site.secret("read_only"))
        await tab.goto("/alerts")
        page = tab.page
        await expect(rule_row(page, "Web traffic")).to_be_visible()
        await expect(page.locator("#deliveries tbody tr").first).to_be_visible()
        await expect(page.locator("#history tbody tr").first).to_be_visible()
        for name in ("Add alert", "Send test", "Delete", "Replay"):
            await expect(page.get_by_role("button", name=re.compile(name))).to_have_count(0)
        await expect(page.locator("dialog#add-alert")).to_have_count(0)
        token = await page.locator("header input[name='csrf_token']").input_value()
        rule_id = await rule_row(page, "Web traffic").get_attribute("data-rule-id")
        before = len(site.receiver.received)
        refused = await page.request.post(
            f"/console/alerts/rules/{rule_id}/test", form={"csrf_token": token}
        )
        assert refused.status == 403
        assert "read-only" in await refused.text()
        refused = await page.request.post(
            "/console/alerts/rules",
            form={"csrf_token": token, "name": "x", "kind": "request_count", "threshold": "1"},
        )
        assert refused.status == 403
        assert len(site.receiver.received) == before
        assert len(await api_rules(site)) == 2
        violations = await axe(tab)
        assert violations == [], violations
        tab.assert_no_errors()
    finally:
        await tab.close()
