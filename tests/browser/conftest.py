"""The browser fixture shared by the web chat and console tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.browser.browsers import ARGS, AXE, CHROMIUM


# Module scope: Playwright's sync API keeps an event loop running in the main thread
# while it is open, and later tests call asyncio.run().
@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    missing = [str(p) for p in (Path(CHROMIUM), AXE) if not p.exists()]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: run scripts/setup-browser first")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield browser
        browser.close()
