"""The web chat in a real browser: help, live tables, a moving progress bar, approvals."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from browser.browser_support import Server, login, shot, start_server
from support import FIXTURES

ROLES = """
[[roles]]
name = "ops"
members = ["web:admin", "web:bob"]
allow = ["*"]

[[roles]]
name = "storage-leads"
members = ["web:bob"]
allow = ["storage *"]
"""


@pytest.fixture
def server(workdir: Path) -> Iterator[Server]:
    """`opsroom serve` in an empty folder, as a new user starts it."""
    yield from start_server(workdir)


@pytest.fixture
def approval_server(workdir: Path) -> Iterator[Server]:
    """`opsroom serve` with roles and a catalog whose `storage wipe` needs approval."""
    shutil.copytree(FIXTURES / "approval_catalog", workdir / "catalog")
    (workdir / "opsroom.toml").write_text(ROLES)
    yield from start_server(workdir, "--catalog", "catalog")


def send(page: Page, text: str) -> None:
    """Type a message in the chat box and press Enter."""
    page.fill("#message", text)
    page.press("#message", "Enter")


def test_help_and_a_live_table_in_the_web_chat(browser: Browser, server: Server) -> None:
    page = login(browser, server, "admin", server.password)
    shot(page, "chat-1-empty")
    page.fill("#message", "!store status")
    expect(page.locator("#usage")).to_contain_text("!store status <store>")
    send(page, "!help")
    mine = page.locator("#stream .event.person.mine").last
    expect(mine.locator(".said")).to_have_text("!help", timeout=5000)
    expect(mine.locator(".author")).to_have_text("web:admin")
    help_card = page.locator("#stream .event.bot").last
    expect(help_card).to_contain_text("store status")
    shot(page, "chat-2-help")

    send(page, "!store status 42")
    table = page.locator("#stream .event.bot table").last
    expect(table.locator("th").first).to_have_text("system")
    expect(table).to_contain_text("store-0042-pos01")
    expect(page.locator("#stream .event.bot .status-success").last).to_contain_text("succeeded")
    shot(page, "chat-3-store-status")
    # The job link leads to the job's page.
    page.locator("#stream .event.bot .job-link").last.click()
    expect(page.locator("#job-state")).to_have_text("succeeded")
    shot(page, "chat-4-job-page")

    # Markup in a message is shown as text, never run.
    page.goto("/chat/general")
    page.wait_for_selector("#chat[data-live='1']")
    evil = "<img src=x onerror=\"document.title='pwned'\"> <b>bold</b>"
    send(page, evil)
    expect(page.locator("#stream .event.person .said").last).to_have_text(evil)
    expect(page.locator("#stream img, #stream b")).to_have_count(0)
    assert page.title() != "pwned"

    # On a phone: one column, the message box full width, the rooms one row above the
    # conversation (below it, switching rooms meant scrolling past the whole chat).
    page.set_viewport_size({"width": 390, "height": 844})
    box = page.locator("#message").bounding_box()
    stream = page.locator("#stream").bounding_box()
    rooms = page.locator(".rooms").bounding_box()
    assert box is not None
    assert stream is not None
    assert rooms is not None
    assert box["width"] > 250
    assert rooms["y"] < stream["y"]
    assert rooms["height"] < 80
    shot(page, "chat-5-phone")
    page.context.close()


def test_the_progress_bar_moves_while_a_migration_runs(browser: Browser, server: Server) -> None:
    page = login(browser, server, "admin", server.password)
    send(page, "!storage migrate netapp-fas01 --volumes 4 --seconds-per-volume 0.7")
    bar = page.locator("#stream progress")
    expect(bar).to_have_count(1, timeout=10_000)
    samples: list[float] = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        value = page.evaluate(
            "() => { const p = document.querySelector('#stream progress'); "
            "return p ? p.value : -1; }"
        )
        if value < 0:
            break  # the job ended: its card now shows the result instead of the bar
        if not samples or value != samples[-1]:
            samples.append(value)
            shot(page, f"progress-{len(samples)}")
        time.sleep(0.1)
    assert len(samples) >= 2, samples
    assert samples == sorted(samples), samples
    assert samples[-1] > samples[0]
    # One card for the whole job, edited in place, that ends with the result.
    job = page.locator("#stream .event.bot").last.get_attribute("data-job")
    assert job
    expect(page.locator(f"#stream li[data-job='{job}']")).to_have_count(1)
    expect(page.locator(f"#stream li[data-job='{job}']")).to_contain_text("Migration complete")
    shot(page, "progress-done")
    page.context.close()


def test_a_second_person_approves_in_the_chat_and_the_job_runs(
    browser: Browser, approval_server: Server
) -> None:
    bob_password = approval_server.add_user("bob")
    admin = login(browser, approval_server, "admin", approval_server.password)
    send(admin, "!storage wipe vol7")
    asked = admin.locator("#stream .event.bot.kind-approval").last
    expect(asked).to_contain_text("storage-leads")
    shot(admin, "approval-1-requested")

    bob = login(browser, approval_server, "bob", bob_password)
    card = bob.locator("#stream .event.bot.kind-approval").last
    expect(card).to_contain_text("storage wipe")
    shot(bob, "approval-2-bob-sees-request")
    card.get_by_role("button", name="Approve").click()
    expect(bob.locator("#stream .event.person").last).to_contain_text("!approve")
    expect(bob.locator("#stream")).to_contain_text("wiped vol7")
    shot(bob, "approval-3-bob-approved")
    # The requester sees it live too.
    expect(admin.locator("#stream")).to_contain_text("wiped vol7")
    shot(admin, "approval-4-requester-sees-result")
    admin.context.close()
    bob.context.close()
