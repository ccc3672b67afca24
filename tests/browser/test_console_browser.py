"""The console in a real browser: catalog search as you type, and insights drawn from real jobs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from browser.browser_support import Server, login, shot, start_server
from support import Opsroom


@pytest.fixture
def server(workdir: Path, opsroom: Opsroom) -> Iterator[Server]:
    """`opsroom serve` on the bundled examples, with three jobs run by `opsroom run` first."""
    for text in ("!store status 42", "!store status 13", "!store status 404 --summary"):
        done = opsroom("run", "--json", text)
        assert done.summary["state"] == "succeeded", done.stdout + done.stderr
    yield from start_server(workdir)


def test_catalog_search_finds_a_command_by_a_word_of_its_description(
    browser: Browser, server: Server
) -> None:
    page = login(browser, server, "admin", server.password)
    page.goto("/catalog")
    rows = page.locator("#catalog-list tbody tr")
    expect(rows.first).to_be_visible()
    everything = rows.count()
    assert everything > 5
    page.locator("#catalog-q").press_sequentially("tills", delay=30)
    # htmx swaps in the filtered list as you type; "tills" is only in the store commands' text.
    expect(rows).to_have_count(2)
    expect(page.locator("#catalog-list")).to_contain_text("store status")
    expect(page.locator("#catalog-list")).not_to_contain_text("ad unlock-account")
    assert page.url.endswith("/catalog?q=tills")
    shot(page, "console-1-catalog-search")
    page.click("#catalog-list a:text-is('store status')")
    expect(page.locator("h1")).to_have_text("store status")
    expect(page.locator("pre.usage")).to_contain_text("!store status <store>")
    expect(page.locator("table.params")).to_contain_text("Store number")
    shot(page, "console-2-command")


def test_the_insights_page_shows_charts_of_the_real_job_history(
    browser: Browser, server: Server
) -> None:
    page = login(browser, server, "admin", server.password)
    page.goto("/insights")
    days = page.locator("#chart-runs-per-day")
    expect(days).to_be_visible()
    expect(days.locator("rect.bar")).to_have_count(30)
    today = days.locator("rect.bar").last
    assert today.locator("title").text_content() is not None
    assert (today.locator("title").text_content() or "").endswith(": 3")
    assert float(today.get_attribute("height") or 0) > 100  # the tallest bar fills the plot
    top = page.locator("#chart-top-commands rect.bar")
    expect(top).to_have_count(1)
    expect(top.locator("title")).to_have_text("store status: 3")
    box = page.locator("#chart-top-commands").bounding_box()
    assert box is not None
    assert box["width"] > 300
    expect(page.locator("table.durations")).to_contain_text("store status")
    expect(page.locator(".never-used")).to_contain_text("ad unlock-account")
    expect(page.locator(".never-used")).not_to_contain_text("store status")
    shot(page, "console-3-insights")
