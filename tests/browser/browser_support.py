"""Driving the console in headless Chromium: Debian's `chromium` package launched by
Playwright's Python API (`executable_path`; Playwright cannot download a browser here).

- `launch()` starts the browser with the flags this closed network needs;
- `Tab` is a page that records every browser console error and page error (tests end
  with `tab.assert_no_errors()`), signs in, takes screenshots into
  `test-artifacts/screenshots/` (listed in .gitignore) and runs axe-core.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, ConsoleMessage, Page, Playwright

from infra.console.assets import test_vendor_file

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = os.environ.get("KEYPULSE_TEST_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WIDE = {"width": 1280, "height": 900}
NARROW = {"width": 390, "height": 844}
SERIOUS = ("serious", "critical")


async def launch(playwright: Playwright) -> Browser:
    if not Path(CHROMIUM).exists():
        raise RuntimeError(
            f"no Chromium at {CHROMIUM}: `make test` installs Debian's chromium package "
            "(apt-get install chromium); or set KEYPULSE_TEST_CHROMIUM"
        )
    return await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)


@dataclass
class Tab:
    """One browser page at `base_url` (the server's root; the console is `/console`)."""

    page: Page
    base_url: str
    errors: list[str] = field(default_factory=list)

    @classmethod
    async def open(
        cls, browser: Browser, base_url: str, viewport: dict[str, int] | None = None
    ) -> Tab:
        context = await browser.new_context(
            viewport=viewport or WIDE,  # type: ignore[arg-type]
            base_url=base_url,
        )
        await context.grant_permissions(["clipboard-read", "clipboard-write"])
        page = await context.new_page()
        tab = cls(page, base_url)

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                tab.errors.append(f"console: {message.text}")

        page.on("console", on_console)
        page.on("pageerror", lambda exc: tab.errors.append(f"page error: {exc}"))
        return tab

    async def close(self) -> None:
        await self.page.context.close()

    async def goto(self, path: str) -> None:
        """`path` under the console, e.g. `/keys`."""
        response = await self.page.goto(f"/console{path}")
        assert response is not None and response.ok, (path, response and response.status)

    async def sign_in(self, secret: str) -> None:
        await self.page.goto("/console/sign-in")
        await self.page.get_by_label("API key").fill(secret)
        await self.page.get_by_role("button", name="Sign in").click()
        await self.page.wait_for_url(re.compile(r"/console/keys"))

    async def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        await self.page.screenshot(path=str(path), full_page=True)
        return path

    async def axe_violations(self) -> list[dict[str, Any]]:
        """axe-core's serious and critical violations on the current page (axe-core is
        injected from the npm package; the console never serves it)."""
        # Evaluated, not added as a <script>: the console's CSP (script-src 'self') blocks
        # inline scripts, and an evaluation is not subject to it.
        await self.page.evaluate(test_vendor_file("axe.min.js").read_text())
        result: dict[str, Any] = await self.page.evaluate("() => axe.run(document)")
        return [v for v in result["violations"] if v.get("impact") in SERIOUS]

    def assert_no_errors(self) -> None:
        assert self.errors == [], self.errors
