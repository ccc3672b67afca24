"""The web chat and console on a 390 px phone and a 1,280 px desktop, in a real Chromium.

One `opsroom serve` on embedded defaults for the module, as a new user starts it. Every page
is checked after wide output arrived: nothing sticks out sideways except inside its own
scroll box, every button and field is on screen, buttons are big enough to tap on the
phone, and the browser logs no error. Screenshots of each page at both sizes are written to
test-artifacts/screenshots/ for people to look at.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Error, Page, expect

from browser.browser_support import DESKTOP, PHONE, Server, login, screenshot, start_server
from browser.layout import controls, sticking_out

TAP = 44  # px: the smallest comfortable touch target
WIDE_OUTPUT = ("!help", "!network status dc1 --verbose")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`opsroom serve` in an empty folder: embedded defaults, bundled examples, demo roles."""
    yield from start_server(tmp_path_factory.mktemp("phone"))


@dataclass
class Errors:
    """What the browser reported as errors: console errors and uncaught exceptions."""

    seen: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> Page:
        """Record this page's errors from now on."""

        def console(message: ConsoleMessage) -> None:
            if message.type == "error":
                self.seen.append(f"{page.url}: console: {message.text}")

        def crashed(error: Error) -> None:
            self.seen.append(f"{page.url}: uncaught: {error}")

        page.on("console", console)
        page.on("pageerror", crashed)
        return page


def send(page: Page, text: str) -> None:
    """Type a message in the chat box and press Enter."""
    page.fill("#message", text)
    page.press("#message", "Enter")


def last_job_id(page: Page) -> str:
    """The job of the newest bot card in the room."""
    job = page.locator("#stream .event.bot[data-job]:not([data-job=''])").last.get_attribute(
        "data-job"
    )
    assert job
    return job


def check_fits(page: Page, device: dict[str, Any], what: str) -> None:
    """Nothing sticks out; every control on screen sideways; big enough to tap on a phone."""
    width = device["viewport"]["width"]
    assert sticking_out(page, width) == [], what
    found = controls(page)
    assert found, what
    outside = [c["what"] for c in found if c["x"] < -0.5 or c["x"] + c["width"] > width + 0.5]
    assert outside == [], what
    if device.get("is_mobile"):
        small = [
            f"{c['what']} {c['width']:.0f}x{c['height']:.0f}"
            for c in found
            if c["what"].startswith("button") and (c["width"] < TAP or c["height"] < TAP)
        ]
        assert small == [], what


def in_view(page: Page, selector: str, device: dict[str, Any]) -> None:
    """The element is entirely on screen, without scrolling."""
    box = page.locator(selector).bounding_box()
    assert box is not None, selector
    view = device["viewport"]
    assert box["x"] >= 0, (selector, box)
    assert box["x"] + box["width"] <= view["width"], (selector, box)
    assert box["y"] >= 0, (selector, box)
    assert box["y"] + box["height"] <= view["height"], (selector, box)


@pytest.mark.parametrize(("size", "device"), [("phone", PHONE), ("desktop", DESKTOP)])
def test_every_page_fits_the_screen_after_wide_output(
    browser: Browser, server: Server, size: str, device: dict[str, Any]
) -> None:
    errors = Errors()
    page = errors.watch(login(browser, server, "admin", server.password, device))
    page.goto(f"/chat/{size}")
    page.wait_for_selector("#chat[data-live='1']")
    expect(page.locator("#empty-hint")).to_be_visible()  # an empty room says what to do
    screenshot(page, f"{size}-chat-empty")
    for text in WIDE_OUTPUT:
        send(page, text)
    card = page.locator("#stream .event.bot.ended").last
    expect(card).to_contain_text("network status: succeeded")
    expect(page.locator("#stream .event.bot").first).to_contain_text("Built-in:")
    if device.get("is_mobile"):
        # Its lines are wider than a phone: they scroll inside their own box.
        assert page.evaluate(
            "() => { const p = document.querySelector('#stream .event.bot.ended pre');"
            " return p.scrollWidth > p.clientWidth; }"
        )
    check_fits(page, device, "chat")
    in_view(page, "#message", device)
    in_view(page, "#composer button[type=submit]", device)
    screenshot(page, f"{size}-chat")
    job = last_job_id(page)

    pages = {
        "job": f"/jobs/{job}",
        "jobs": "/jobs",
        "approvals": "/approvals",
        "audit": "/audit",
        "catalog": "/catalog",
        "command": "/catalog/storage%20migrate",
        "insights": "/insights",
        "workers": "/workers",
    }
    with httpx.Client(base_url=server.url) as anonymous:
        # The schedules page, where this version has one (it asks for a login, like all).
        if anonymous.get("/schedules").status_code == 303:
            pages["schedules"] = "/schedules"
    for name, path in pages.items():
        page.goto(path)
        page.wait_for_load_state("load")
        check_fits(page, device, name)
        screenshot(page, f"{size}-{name}")
    page.context.close()
    assert errors.seen == []


def test_a_phone_approves_on_the_approvals_page_and_the_requesters_room_hears_it(
    browser: Browser, server: Server
) -> None:
    bob_password = server.add_user("bob")
    errors = Errors()
    admin = errors.watch(login(browser, server, "admin", server.password, DESKTOP))
    admin.goto("/chat/storage")
    admin.wait_for_selector("#chat[data-live='1']")
    send(admin, "!storage decommission netapp-legacy --ticket CHG-4711")
    asked = admin.locator("#stream .event.bot.kind-approval").last
    expect(asked).to_contain_text("needs approval by a member of role storage-leads")
    # The requester is told someone else decides; never offered Approve or Deny.
    expect(asked.locator(".own-request")).to_be_visible()
    expect(asked.get_by_role("button")).to_have_count(0)
    screenshot(admin, "approval-requester-waits")

    bob = errors.watch(login(browser, server, "bob", bob_password, PHONE))
    bob.goto("/approvals")
    row = bob.locator("tr", has_text="storage decommission")
    expect(row.locator("code")).to_have_text(
        "storage decommission --array netapp-legacy --ticket CHG-4711"
    )
    check_fits(bob, PHONE, "approvals with a pending request")
    screenshot(bob, "phone-approvals-pending")
    row.get_by_role("button", name="Approve").click()
    result = bob.locator("#decision-result")
    expect(result).to_contain_text("approved by web:bob; starting")
    expect(result.locator("a", has_text="#storage")).to_be_visible()
    # The approver's page got the decision, not the job's output: that is the room's.
    expect(result).not_to_contain_text("out of service")
    screenshot(bob, "phone-approvals-approved")

    room = admin.locator("#stream")
    expect(room).to_contain_text("approved by web:bob", timeout=5_000)
    expect(room).to_contain_text("netapp-legacy is out of service", timeout=5_000)
    screenshot(admin, "approval-requester-room")
    admin.context.close()
    bob.context.close()
    assert errors.seen == []


def test_a_table_job_page_and_the_more_lines_link(browser: Browser, server: Server) -> None:
    errors = Errors()
    page = errors.watch(login(browser, server, "admin", server.password, PHONE))
    page.goto("/chat/tables")
    page.wait_for_selector("#chat[data-live='1']")
    send(page, "!store status 42")
    expect(page.locator("#stream .event.bot.ended").last).to_contain_text("succeeded")
    page.locator("#stream .event.bot.ended .job-link").last.click()
    page.wait_for_url(re.compile(r"/jobs/\d+$"))
    table = page.locator(".job-table table")
    expect(table.locator("th").first).to_have_text("system")
    expect(table).to_contain_text("store-0042-pos01")
    expect(table).to_contain_text("payment terminal")
    screenshot(page, "phone-job-table")

    page.goto("/chat/tables")
    page.wait_for_selector("#chat[data-live='1']")
    # A bad value: the error, and the usage on a line of its own.
    send(page, "!store status abc")
    error = page.locator("#stream .event.bot.kind-error .status").last
    expect(error).to_contain_text("usage:")
    lines = error.inner_text().splitlines()
    assert len(lines) == 2, lines
    assert lines[1].startswith("usage: !store status")
    send(page, "!network status dc1 --verbose")
    card = page.locator("#stream .event.bot.ended").last
    expect(card).to_contain_text("network status: succeeded")
    more = card.locator("a.more")
    expect(more).to_have_text(re.compile(r"^… \d+ more lines? — full log$"))
    # The marker stands above the lines it stands for, the outcome above both.
    order = card.evaluate(
        "c => Array.from(c.querySelectorAll('.status-success, a.more, pre')).map(e => e.tagName)"
    )
    assert order == ["P", "A", "PRE"], order
    more.click()
    page.wait_for_url(re.compile(r"/jobs/\d+$"))
    expect(page.locator("h1")).to_contain_text("network status")
    # The lines the chat left out are on the job page: the title and the header.
    expect(page.locator("#log")).to_contain_text("Network status for dc1")
    expect(page.locator("#log")).to_contain_text("DEVICE")
    page.context.close()
    assert errors.seen == []


def test_cancel_asks_first_and_a_cancelled_job_shows_no_success(
    browser: Browser, server: Server
) -> None:
    errors = Errors()
    page = errors.watch(login(browser, server, "admin", server.password, PHONE))
    page.goto("/chat/cancel")
    page.wait_for_selector("#chat[data-live='1']")
    send(page, "!storage migrate netapp-fas01 --volumes 20 --seconds-per-volume 3")
    expect(page.locator("#stream button.cancel")).to_be_visible(timeout=10_000)
    job = page.locator("#stream li.event.bot[data-job]").first.get_attribute("data-job")
    # The job's live card (the room also hears about the cancel in a card of its own).
    card = page.locator(f"#stream li.event.bot[data-job='{job}']").first
    cancel = card.locator("button.cancel")
    cancel.click()
    confirm = card.locator(".confirm")
    expect(confirm).to_be_visible()
    screenshot(page, "phone-chat-cancel-confirm")
    # One tap stopped nothing: the job is still running until the second, explicit one.
    confirm.get_by_role("button", name="Keep it running").click()
    expect(confirm).to_be_hidden()
    state = page.evaluate(
        "async (id) => (await (await fetch(`/api/v1/jobs/${id}`)).json()).state", job
    )
    assert state == "running"
    cancel.click()
    confirm.get_by_role("button", name=f"Yes, cancel job {job}").click()
    expect(card).to_have_class(re.compile(r"\bended\b"), timeout=20_000)
    expect(card).to_contain_text("cancelled")
    expect(page.locator(f"#stream li[data-job='{job}'] .status-success")).to_have_count(0)
    expect(card.locator("button.cancel")).to_have_count(0)
    screenshot(page, "phone-chat-cancelled")

    # The job page asks too, and its Cancel goes once the job has ended.
    send(page, "!storage migrate netapp-fas02 --volumes 20 --seconds-per-volume 3")
    running = page.locator(f"#stream li.event.bot:not([data-job='{job}']) button.cancel")
    expect(running).to_be_visible(timeout=20_000)
    second = running.evaluate("b => b.closest('li').dataset.job")
    assert second
    assert second != job
    page.goto(f"/jobs/{second}")
    expect(page.locator("#job-state")).to_have_text("running")
    expect(page.locator("#job-progress progress")).to_be_visible()
    page.click("#cancel")
    expect(page.locator("#cancel-confirm")).to_be_visible()
    expect(page.locator("#job-state")).to_have_text("running")
    screenshot(page, "phone-job-cancel-confirm")
    page.click("#cancel-yes")
    expect(page.locator("#job-state")).to_have_text("cancelled", timeout=20_000)
    expect(page.locator("#cancel-box")).to_have_count(0)
    page.goto("/chat/cancel")
    page.wait_for_selector("#chat[data-live='1']")
    ended = page.locator(f"#stream li.event.bot[data-job='{second}']").first
    expect(ended).to_contain_text("cancelled")
    expect(page.locator(f"#stream li[data-job='{second}'] .status-success")).to_have_count(0)
    page.context.close()
    assert errors.seen == []
