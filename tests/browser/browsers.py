"""Shared by the browser tests: Debian's Chromium, axe-core, and a context that keeps
every page on the gateway (anything elsewhere gets a neutral local page)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, BrowserContext, Page

CHROMIUM = "/usr/bin/chromium"
AXE = Path(__file__).resolve().parent / "node_modules" / "axe-core" / "axe.min.js"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
NEUTRAL_PAGE = "<!DOCTYPE html><html lang='en'><title>Weather</title><h1>Weather</h1></html>"


def new_context(
    browser: Browser, base_url: str, *, init_script: str | None = None, **options: Any
) -> BrowserContext:
    context = browser.new_context(**options)
    context.set_default_timeout(15_000)
    origin = base_url.rstrip("/")

    def elsewhere(url: str) -> bool:
        return not (url == origin or url.startswith(origin + "/"))

    # Everything off the gateway (the exit site, a start page) gets a neutral local page.
    context.route(
        elsewhere, lambda route: route.fulfill(content_type="text/html", body=NEUTRAL_PAGE)
    )
    if init_script:
        context.add_init_script(init_script)
    return context


def serious_violations(page: Page) -> list[str]:
    """axe-core's serious and critical findings on the page, one readable entry each."""
    page.add_script_tag(path=str(AXE))
    violations = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
    )
    return [
        f"{v['impact']}: {v['id']}: {v['help']} ({v['helpUrl']})\n"
        + "\n".join(f"    {n['target']}: {n.get('failureSummary', '')}" for n in v["nodes"])
        for v in violations
        if v["impact"] in ("serious", "critical")
    ]
