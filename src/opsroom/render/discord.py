"""Discord renderer: a neutral reply as Discord messages (pure; no Discord library needed).

A message holds at most 2,000 characters of Markdown `content` and five action rows of
components (five buttons, or one select menu, per row). Tables and script output become
code blocks; a fence printed by a script cannot close them. Mentions are never parsed
(`allowed_mentions` is empty on every message), so `@everyone` printed by a script pings
nobody; `escape` keeps the bot's own plain text from turning into Markdown by accident.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opsroom.model.blocks import (
    Actions,
    Block,
    Choices,
    Code,
    File,
    Progress,
    Reply,
    Status,
    Table,
    Text,
)
from opsroom.render.text import progress_bar, render_table

MAX_LENGTH = 2000  # characters of one message's content
ROWS_LIMIT = 5  # action rows in one message
BUTTONS_PER_ROW = 5
LABEL_LIMIT = 80  # characters of a button label
OPTION_LIMIT = 100  # characters of a select option's label
SELECT_LIMIT = 25  # options of one select menu
BUTTONS_FOR_CHOICES = 5  # up to this many choices are buttons, more a select menu
_MARKS = {"success": "✅", "error": "❌", "warning": "⚠️"}
_FENCE = "```"
# Button styles: PRIMARY, SECONDARY, DANGER.
_PRIMARY, _SECONDARY, _DANGER = 1, 2, 4

Component = dict[str, Any]


@dataclass(frozen=True, slots=True)
class DiscordMessage:
    """One message body: Markdown `content` plus action rows of components."""

    content: str
    components: tuple[Component, ...] = field(default=())

    def payload(self) -> dict[str, Any]:
        """The JSON body of POST/PATCH /channels/{id}/messages."""
        return {
            "content": self.content,
            "components": list(self.components),
            "allowed_mentions": {"parse": []},
        }


def _code_line(line: str) -> str:
    # A fence inside output would end the code block early and let the rest render as markup.
    return line.replace(_FENCE, "``\u200b`")


def _tail_that_fits(lines: Sequence[str], budget: int) -> list[str]:
    """The last lines whose total length (with newlines) stays within `budget`."""
    kept: list[str] = []
    used = 0
    for line in reversed(lines):
        if len(line) > budget:
            line = line[: max(budget - 1, 0)] + "…"
        if used + len(line) + 1 > budget:
            break
        kept.append(line)
        used += len(line) + 1
    kept.reverse()
    return kept


def more_line(count: int, what: str, link: str | None) -> str:
    """`… 12 more lines — full log` with the link to the full log."""
    if link and link.startswith(("https://", "http://")):
        where = f" — [full log](<{link}>)"
    elif link:
        where = f" — full log: `{link}`"
    else:
        where = ""
    if count == 1:
        what = what.removesuffix("s")
    return f"… {count} more {what}{where}"


def _fenced(lines: Sequence[str]) -> str:
    return _FENCE + "\n" + "\n".join(lines) + "\n" + _FENCE


def _code(lines: Sequence[str], more: int, link: str | None, budget: int) -> list[str]:
    escaped = [_code_line(line) for line in lines]
    note_room = len(more_line(10**9, "lines", link)) + 1
    kept = _tail_that_fits(escaped, budget - len(_fenced([])) - note_room)
    left_out = more + len(escaped) - len(kept)
    parts: list[str] = []
    if left_out:
        parts.append(more_line(left_out, "lines", link))
    if kept:
        parts.append(_fenced(kept))
    return ["\n".join(parts)] if parts else []


def _table(table: Table, budget: int) -> list[str]:
    lines = [_code_line(line) for line in render_table(table.columns, table.rows)]
    room = budget - len(_fenced([])) - len(more_line(10**9, "rows", None)) - 1
    kept: list[str] = []
    used = 0
    for line in lines:
        if used + len(line) + 1 > room:
            break
        kept.append(line)
        used += len(line) + 1
    text = _fenced(kept)
    if len(lines) > len(kept):
        text += "\n" + more_line(len(lines) - len(kept), "rows", None)
    return [text]


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def _label(text: str, limit: int = LABEL_LIMIT) -> str:
    return (text[: limit - 1] + "…" if len(text) > limit else text) or " "


def button_rows(buttons: Sequence[tuple[str, str]]) -> list[Component]:
    """Buttons in action rows of five; each `custom_id` is the value opsroom reads back."""
    rows: list[Component] = []
    for start in range(0, len(buttons), BUTTONS_PER_ROW):
        row: list[Component] = []
        for label, value in buttons[start : start + BUTTONS_PER_ROW]:
            style = _SECONDARY
            if value.startswith("approve:"):
                style = _PRIMARY
            elif value.startswith("deny:"):
                style = _DANGER
            row.append({"type": 2, "style": style, "label": _label(label), "custom_id": value})
        rows.append({"type": 1, "components": row})
    return rows


def _choices(choices: Choices) -> tuple[list[str], list[Component]]:
    values = [(o, f"menu:{choices.menu_id}:{i}") for i, o in enumerate(choices.options)]
    if len(values) <= BUTTONS_FOR_CHOICES:
        return [choices.prompt], button_rows(values)
    if len(values) <= SELECT_LIMIT:
        select = {
            "type": 3,  # STRING_SELECT
            "custom_id": f"menu:{choices.menu_id}",
            "placeholder": "Choose…",
            "options": [{"label": _label(o, OPTION_LIMIT), "value": v} for o, v in values],
        }
        return [choices.prompt], [{"type": 1, "components": [select]}]
    # Too many for a menu: a numbered list, answered by typing the number or the value.
    listing = [f"{i}) {option}" for i, option in enumerate(choices.options, 1)]
    return [choices.prompt, *listing, "Answer with a number (or the value)."], []


def render_block(block: Block, *, budget: int = MAX_LENGTH) -> tuple[list[str], list[Component]]:
    """One neutral block as Markdown paragraphs and components (code kept within `budget`)."""
    match block:
        case Text(text=text):
            return [text or " "], []
        case Code(lines=lines, more=more, link=link):
            return _code(lines, more, link, budget), []
        case Table():
            return _table(block, budget), []
        case Progress(percent=percent, message=message):
            bar = progress_bar(percent, "")
            return [f"`{bar}`" + (f" {message}" if message else "")], []
        case Status(text=text, level=level):
            mark = _MARKS.get(level)
            return [f"{mark} {text}" if mark else text], []
        case File(name=name, size=size, job_id=job_id):
            where = f" (job {job_id})" if job_id is not None else ""
            return [f"📎 **{name}** — {_size(size)}{where}"], []
        case Choices():
            return _choices(block)
        case Actions(buttons=buttons):
            return [], button_rows(buttons)
    raise TypeError(f"unknown block {block!r}")  # pragma: no cover - exhaustive


def _split(text: str, limit: int) -> list[str]:
    """Pieces of at most `limit` characters, cut at line ends where possible."""
    pieces: list[str] = []
    while len(text) > limit:
        cut = text.rfind("\n", 0, limit)
        cut = cut if cut > 0 else limit
        pieces.append(text[:cut])
        text = text[cut:].lstrip("\n")
    pieces.append(text)
    return pieces


def _parts(reply: Reply, limit: int) -> tuple[list[str], list[Component]]:
    paragraphs: list[str] = []
    components: list[Component] = []
    for block in reply.blocks:
        texts, rows = render_block(block, budget=limit)
        for text in texts:
            paragraphs.extend(_split(text, limit))
        components.extend(rows)
    return paragraphs, components


@dataclass(frozen=True, slots=True)
class DiscordRenderer:
    """Replies as messages of at most `max_length` characters (a `Renderer`)."""

    max_length: int = MAX_LENGTH

    def render(self, reply: Reply) -> list[DiscordMessage]:
        """A reply as one or more messages, each within `max_length` characters and 5 rows."""
        limit = min(self.max_length, MAX_LENGTH)
        paragraphs, components = _parts(reply, limit)
        contents: list[str] = []
        current = ""
        for paragraph in paragraphs:
            joined = f"{current}\n{paragraph}" if current else paragraph
            if current and len(joined) > limit:
                contents.append(current)
                joined = paragraph
            current = joined
        contents.append(current or " ")
        rows = [components[i : i + ROWS_LIMIT] for i in range(0, len(components), ROWS_LIMIT)]
        messages = [DiscordMessage(c) for c in contents[:-1]]
        # The buttons go with the last piece, below everything they are about.
        messages.append(DiscordMessage(contents[-1], tuple(rows[0]) if rows else ()))
        messages.extend(DiscordMessage("…", tuple(more)) for more in rows[1:])
        return messages

    def render_single(self, reply: Reply) -> DiscordMessage:
        """A reply as exactly one message (for an edit): the end kept when it must shrink."""
        limit = min(self.max_length, MAX_LENGTH)
        paragraphs, components = _parts(reply, limit)
        content = "\n".join(paragraphs) or " "
        if len(content) > limit:
            note = "… earlier lines left out"
            kept: list[str] = []
            used = len(note)
            for paragraph in reversed(paragraphs):
                if used + len(paragraph) + 1 > limit:
                    break
                kept.append(paragraph)
                used += len(paragraph) + 1
            content = "\n".join([note, *reversed(kept)])
        return DiscordMessage(content, tuple(components[:ROWS_LIMIT]))


def visible_text(message: DiscordMessage | Mapping[str, Any]) -> str:
    """What a person reads in a message: its content and its buttons' labels."""
    if isinstance(message, DiscordMessage):
        content, rows = message.content, list(message.components)
    else:
        content, rows = str(message.get("content") or ""), list(message.get("components") or [])
    labels = []
    for row in rows:
        for item in row.get("components", []):
            labels.append(f"[{item.get('label') or item.get('placeholder') or ''}]")
    return "\n".join(p for p in (content, " ".join(labels)) if p)
