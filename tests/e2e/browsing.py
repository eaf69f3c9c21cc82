"""Shared by the browser tests: how Chromium is started, where screenshots
go, and how Ada logs in."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.support import ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = ROOT / "test-results" / "e2e"


def log_in(page: Page, base_url: str, password: str) -> None:
    """Log Ada in with `password` (the `ada_password` fixture's)."""
    page.goto(f"{base_url}/accounts/login/")
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
