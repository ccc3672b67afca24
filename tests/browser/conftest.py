"""Real-browser fixtures: Debian's Chromium driven by Playwright.

Chromium must be installed (`apt-get install chromium`; scripts/test does it). Without it these
tests fail with that instruction; they are never skipped.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from browser.browser_support import CHROMIUM, CHROMIUM_ARGS


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Debian Chromium."""
    assert shutil.which(CHROMIUM) or Path(CHROMIUM).exists(), (
        f"the browser tests need Chromium at {CHROMIUM}: apt-get install chromium"
    )
    # Playwright gives every launch a fresh temporary profile (user-data-dir) of its own.
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
