"""Signing in and out of the console, the cookie's attributes, CSRF, and the access
levels: admin and read-only keys sign in, full-access and revoked keys do not."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, expect

from schemas.plans import Plan
from tests.browser.browser_support import Tab
from tests.browser.console_support import ServedConsole, served_console

pytestmark = pytest.mark.asyncio(loop_scope="module")

ACCOUNT = "acc_signin"


@pytest.fixture(scope="module")
def console(
    tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str
) -> Iterator[ServedConsole]:
    roles = ("admin", "read_only", "full", "revoked")
    data = tmp_path_factory.mktemp("signin")
    with served_console(data, kafka_bootstrap, {ACCOUNT: (Plan.FREE, roles)}) as served:
        yield served


@pytest_asyncio.fixture(loop_scope="module")
async def tab(browser: Browser, console: ServedConsole) -> AsyncIterator[Tab]:
    opened = await Tab.open(browser, console.base_url)
    yield opened
    await opened.close()


async def test_admin_signs_in_with_a_strict_httponly_cookie_and_out(
    tab: Tab, console: ServedConsole
) -> None:
    await tab.sign_in(console.secret(ACCOUNT, "admin"))
    cookies = await tab.page.context.cookies()
    session = [c for c in cookies if c["name"] == "keypulse_console"]
    assert len(session) == 1
    assert session[0]["httpOnly"] is True
    assert session[0]["sameSite"] == "Strict"
    assert console.secret(ACCOUNT, "admin") not in session[0]["value"]
    await expect(tab.page.get_by_text(ACCOUNT)).to_be_visible()
    await tab.page.get_by_role("button", name="Sign out").click()
    await tab.page.wait_for_url("**/console/sign-in**")
    await tab.page.goto("/console/keys")
    await expect(tab.page.get_by_role("heading", name="Sign in to the console")).to_be_visible()
    tab.assert_no_errors()


@pytest.mark.parametrize(
    ("role", "says"),
    [("full", "full-access key"), ("revoked", "has been revoked"), (None, "malformed API key")],
)
async def test_keys_that_cannot_sign_in_are_told_why(
    tab: Tab, console: ServedConsole, role: str | None, says: str
) -> None:
    secret = console.secret(ACCOUNT, role) if role else "pk_live_notakey"
    await tab.page.goto("/console/sign-in")
    await tab.page.get_by_label("API key").fill(secret)
    await tab.page.get_by_role("button", name="Sign in").click()
    await expect(tab.page.get_by_role("alert")).to_contain_text(says)
    assert "/console/sign-in" in tab.page.url
    assert not [c for c in await tab.page.context.cookies() if c["name"] == "keypulse_console"]


async def test_a_post_without_the_csrf_token_is_refused(tab: Tab, console: ServedConsole) -> None:
    await tab.sign_in(console.secret(ACCOUNT, "admin"))
    refused = await tab.page.request.post("/console/sign-out", form={"csrf_token": "forged"})
    assert refused.status == 403
    assert "did not come from this console" in await refused.text()
    missing = await tab.page.request.post("/console/sign-out")
    assert missing.status == 403
    await tab.goto("/keys")  # still signed in: the refused posts changed nothing
    await expect(tab.page.get_by_role("button", name="Sign out")).to_be_visible()


async def test_the_sign_in_form_needs_its_own_token(tab: Tab, console: ServedConsole) -> None:
    secret = console.secret(ACCOUNT, "admin")
    response = await tab.page.request.post("/console/sign-in", form={"key": secret})
    assert response.status == 403
    assert not [c for c in await tab.page.context.cookies() if c["name"] == "keypulse_console"]


async def test_read_only_signs_in(tab: Tab, console: ServedConsole) -> None:
    await tab.sign_in(console.secret(ACCOUNT, "read_only"))
    await expect(tab.page.locator("header .badge")).to_have_text("read-only")
    tab.assert_no_errors()


async def test_screenshot_dir_is_ignored() -> None:
    ignored = (Path(__file__).resolve().parents[2] / ".gitignore").read_text().split()
    assert "test-artifacts/" in ignored
