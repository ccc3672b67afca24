"""Neutral output blocks: what a reply contains, before a renderer shapes it for a platform."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Text:
    """A paragraph of plain text (may use light markdown: `code`, *emphasis*)."""

    text: str


@dataclass(frozen=True, slots=True)
class Code:
    """Preformatted output lines, e.g. a script's stdout."""

    lines: tuple[str, ...]
    more: int = 0  # lines left out (truncation), shown as "N more lines"
    link: str | None = None  # where the full output lives


@dataclass(frozen=True, slots=True)
class Table:
    """Rows of structured output."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True, slots=True)
class Progress:
    """A progress bar."""

    percent: float | None
    message: str = ""


@dataclass(frozen=True, slots=True)
class Status:
    """A one-line status: job state, outcome."""

    text: str
    level: str = "info"  # info | success | warning | error


@dataclass(frozen=True, slots=True)
class File:
    """A file attached to a reply (an attachment a job produced)."""

    name: str
    size: int
    job_id: int | None = None
    content_type: str = "application/octet-stream"


@dataclass(frozen=True, slots=True)
class Choices:
    """A menu: pick one value — buttons where the platform has them, a numbered list elsewhere.

    An answer names the menu and the option's index (a button's value is `menu_id:index`),
    or, in a plain chat, is the option's number or its text.
    """

    prompt: str
    options: tuple[str, ...]
    menu_id: str


@dataclass(frozen=True, slots=True)
class Actions:
    """Buttons: (label, value) pairs, e.g. ("Approve", "approve:12").

    Where a platform has no buttons the reply's text already says what to type instead.
    """

    buttons: tuple[tuple[str, str], ...]


Block = Text | Code | Table | Progress | Status | File | Choices | Actions


@dataclass(frozen=True, slots=True)
class Reply:
    """One message from the bot to a room."""

    blocks: tuple[Block, ...]
    job_id: int | None = None
    kind: str = "reply"  # reply | error | job  (for --json and renderers)
