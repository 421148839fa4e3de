"""The browser tests' shared fixtures: Playwright and one headless Chromium per module
(`browser_support`). Each test module serves its own console and declares
`pytestmark = pytest.mark.asyncio(loop_scope="module")` to share the browser."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from playwright.async_api import Browser, async_playwright

from tests.browser.browser_support import launch


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        chromium = await launch(playwright)
        try:
            yield chromium
        finally:
            await chromium.close()
