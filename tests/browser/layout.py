"""Layout checks evaluated inside the page: what sticks out, and where the controls are."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Page

# Every element whose box reaches past the viewport's left or right edge, unless an ancestor
# clips or scrolls it sideways (overflow auto/scroll/hidden: a code block, a table's box).
_OFFENDERS = """
(width) => {
  const clipped = (el) => {
    for (let p = el.parentElement; p && p !== document.documentElement; p = p.parentElement) {
      if (["auto", "scroll", "hidden", "clip"].includes(getComputedStyle(p).overflowX)) return true;
    }
    return false;
  };
  const name = (el) => {
    const classes = typeof el.className === "string" ? el.className.trim() : "";
    const dotted = classes ? "." + classes.split(/\\s+/).join(".") : "";
    return el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") + dotted;
  };
  const out = [];
  for (const el of document.body.querySelectorAll("*")) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    if (r.left >= -0.5 && r.right <= width + 0.5) continue;
    if (clipped(el)) continue;
    out.push(`${name(el)} spans ${Math.round(r.left)}..${Math.round(r.right)}`);
  }
  return { offenders: out, pageWidth: document.documentElement.scrollWidth };
}
"""

# Buttons and fields as they are laid out: label, box, and whether a person can see them.
_CONTROLS = """
() => Array.from(document.querySelectorAll("button, input, select, textarea"))
  .filter((el) => el.type !== "hidden")
  .map((el) => {
    const r = el.getBoundingClientRect();
    const s = getComputedStyle(el);
    return {
      what: `${el.tagName.toLowerCase()}${el.id ? "#" + el.id : ""} ` +
        `"${(el.textContent || el.name || "").trim()}"`,
      x: r.left, y: r.top, width: r.width, height: r.height,
      shown: r.width > 0 && r.height > 0 && s.visibility !== "hidden",
      sr: el.closest(".sr-only, .visually-hidden") !== null,
    };
  })
"""


def sticking_out(page: Page, width: int) -> list[str]:
    """Elements outside the viewport horizontally (and not inside their own scroll box)."""
    found: dict[str, Any] = page.evaluate(_OFFENDERS, width)
    problems = list(found["offenders"])
    if found["pageWidth"] > width + 1:
        problems.append(f"the page is {found['pageWidth']} px wide")
    return problems


def controls(page: Page) -> list[dict[str, Any]]:
    """Every visible button and field (not the screen-reader-only ones), with its box."""
    found: list[dict[str, Any]] = page.evaluate(_CONTROLS)
    return [c for c in found if c["shown"] and not c["sr"]]
