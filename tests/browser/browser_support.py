"""Helpers of the browser tests: `opsroom serve` as a child process, login, screenshots."""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page

from support import OPSROOM

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass
class Server:
    """One `opsroom serve` child process."""

    proc: subprocess.Popen[str]
    url: str
    password: str
    workdir: Path

    def opsroom(self, *args: str) -> str:
        """Run another `opsroom` command in the server's folder; its stdout."""
        done = subprocess.run(
            [OPSROOM, *args],
            cwd=self.workdir,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return done.stdout

    def add_user(self, name: str) -> str:
        """Create a web account with `opsroom user add`; its one-time password."""
        out = self.opsroom("user", "add", name)
        m = re.search(rf'"{name}" has the password: (\S+)', out)
        assert m, out
        return m.group(1)


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("OPSROOM_")}


def start_server(workdir: Path, *args: str) -> Iterator[Server]:
    """Start `opsroom serve` in `workdir`, wait for its address and admin password."""
    with (workdir / "serve.stderr").open("w") as stderr:
        proc = subprocess.Popen(
            # Port 0: serve binds first and announces the port it got, so nothing can take it.
            [OPSROOM, "serve", "--listen", "127.0.0.1:0", *args],
            cwd=workdir,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    assert proc.stdout is not None
    url = password = ""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if m := re.search(r"serving on (http://\S+)", line):
            url = m.group(1)
        if m := re.search(r'"admin" has the password: (\S+)', line):
            password = m.group(1)
        if "Log in at" in line:
            break
    assert url, (workdir / "serve.stderr").read_text()
    assert password, "a first start prints the admin password"
    try:
        yield Server(proc, url, password, workdir)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        proc.stdout.close()


PHONE: dict[str, Any] = {
    "viewport": {"width": 390, "height": 844},
    "is_mobile": True,
    "has_touch": True,
    "device_scale_factor": 3,
}
DESKTOP: dict[str, Any] = {"viewport": {"width": 1280, "height": 800}}
SCREENSHOTS = ARTIFACTS / "screenshots"


def login(
    browser: Browser,
    server: Server,
    username: str,
    password: str,
    device: dict[str, Any] | None = None,
) -> Page:
    """A new browser context (its own cookies), logged in through the login form."""
    context = browser.new_context(
        base_url=server.url, **(device or {"viewport": {"width": 1200, "height": 900}})
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.goto("/")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url("**/chat/general")
    page.wait_for_selector("#chat[data-live='1']")
    return page


def shot(page: Page, name: str) -> None:
    """Save a screenshot as a test artefact (test-artifacts/<name>.png)."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def screenshot(page: Page, name: str) -> None:
    """Save a page's screenshot for people to look at: test-artifacts/screenshots/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
