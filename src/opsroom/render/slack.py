"""Slack renderer: a neutral reply as Block Kit messages (pure; no Slack library needed).

Slack's limits shape everything here: 3,000 characters of text per section, 50 blocks
per message, 40,000 characters per message (we keep far below, at the adapter's
`max_message_length`). Tables become monospace code blocks (Slack has no table block);
script output is escaped so `<!channel>` or `<@U…>` printed by a script never pings anyone.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
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

SECTION_LIMIT = 3000  # characters of text in one section block
BLOCK_LIMIT = 50  # blocks in one message
TEXT_LIMIT = 40_000  # characters of one message's text; Slack truncates beyond
BUTTON_LIMIT = 25  # elements in one actions block
LABEL_LIMIT = 75  # characters of a button label or select option
SELECT_LIMIT = 100  # options of a static_select
BUTTONS_FOR_CHOICES = 5  # up to this many choices are buttons, more a select menu
_MARKS = {"success": ":white_check_mark:", "error": ":x:", "warning": ":warning:"}
_FENCE = "```"

SlackBlock = dict[str, Any]


@dataclass(frozen=True, slots=True)
class SlackMessage:
    """One chat.postMessage / chat.update body: fallback `text` plus `blocks`."""

    text: str
    blocks: tuple[SlackBlock, ...]

    def payload(self) -> dict[str, Any]:
        """The keyword arguments for chat.postMessage / chat.update."""
        return {"text": self.text, "blocks": list(self.blocks)}


def escape(text: str) -> str:
    """Escape Slack's control characters so text shows as written and mentions nothing."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _code_line(line: str) -> str:
    # A fence inside output would end the code block early and let the rest render as markup.
    return escape(line).replace(_FENCE, "``\u200b`")


def _section(text: str) -> SlackBlock:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _context(text: str) -> SlackBlock:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def _label(text: str) -> dict[str, Any]:
    if len(text) > LABEL_LIMIT:
        text = text[: LABEL_LIMIT - 1] + "…"
    return {"type": "plain_text", "text": text or " ", "emoji": True}


def _split_text(text: str, limit: int) -> list[str]:
    """Pieces of at most `limit` characters, cut at line ends where possible."""
    pieces: list[str] = []
    while len(text) > limit:
        cut = text.rfind("\n", 0, limit)
        cut = cut if cut > 0 else limit
        pieces.append(text[:cut])
        text = text[cut:].lstrip("\n")
    pieces.append(text)
    return pieces


def _tail_that_fits(lines: Sequence[str], budget: int) -> list[str]:
    """The last lines whose total length (with newlines) stays within `budget`."""
    kept: list[str] = []
    used = 0
    for line in reversed(lines):
        if len(line) > budget:
            line = line[: budget - 1] + "…"
        if used + len(line) + 1 > budget:
            break
        kept.append(line)
        used += len(line) + 1
    kept.reverse()
    return kept


def _more(count: int, what: str, link: str | None) -> str:
    if link and link.startswith(("https://", "http://")):
        where = f" — <{escape(link)}|full log>"
    elif link:
        # A command such as `!job 12`: inside `<…>` Slack would read it as a broken link.
        where = f" — full log: `{escape(link)}`"
    else:
        where = ""
    if count == 1:
        what = what.removesuffix("s")
    return f"… {count} more {what}{where}"


def _code_blocks(
    lines: Sequence[str], more: int, link: str | None, budget: int
) -> list[SlackBlock]:
    escaped = [_code_line(line) for line in lines]
    room = budget - 2 * len(_FENCE) - 2
    kept = _tail_that_fits(escaped, room)
    left_out = more + len(escaped) - len(kept)
    blocks: list[SlackBlock] = []
    if left_out:
        blocks.append(_context(_more(left_out, "lines", link)))
    if kept:
        blocks.append(_section(_FENCE + "\n" + "\n".join(kept) + "\n" + _FENCE))
    return blocks


def _table_blocks(table: Table, budget: int) -> list[SlackBlock]:
    lines = [_code_line(line) for line in render_table(table.columns, table.rows)]
    room = budget - 2 * len(_FENCE) - 2
    kept: list[str] = []
    used = 0
    for line in lines:
        if used + len(line) + 1 > room:
            break
        kept.append(line)
        used += len(line) + 1
    blocks = [_section(_FENCE + "\n" + "\n".join(kept) + "\n" + _FENCE)]
    left_out = len(lines) - len(kept)
    if left_out:
        blocks.append(_context(_more(left_out, "rows", None)))
    return blocks


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def _buttons(buttons: Sequence[tuple[str, str]], block_id: str) -> list[SlackBlock]:
    blocks: list[SlackBlock] = []
    for start in range(0, len(buttons), BUTTON_LIMIT):
        elements: list[dict[str, Any]] = []
        for i, (label, value) in enumerate(buttons[start : start + BUTTON_LIMIT], start):
            button: dict[str, Any] = {
                "type": "button",
                "action_id": f"opsroom_{i}",
                "text": _label(label),
                "value": value,
            }
            if value.startswith("approve:"):
                button["style"] = "primary"
            elif value.startswith("deny:"):
                button["style"] = "danger"
            elements.append(button)
        blocks.append({"type": "actions", "block_id": f"{block_id}_{start}", "elements": elements})
    return blocks


def _choices_blocks(choices: Choices) -> list[SlackBlock]:
    options = choices.options
    head = _section(escape(choices.prompt))
    values = [(option, f"menu:{choices.menu_id}:{i}") for i, option in enumerate(options)]
    if len(options) <= BUTTONS_FOR_CHOICES:
        return [head, *_buttons(values, f"menu_{choices.menu_id}")]
    if len(options) <= SELECT_LIMIT:
        select = {
            "type": "static_select",
            "action_id": "opsroom_menu",
            "placeholder": _label("Choose…"),
            "options": [{"text": _label(label), "value": value} for label, value in values],
        }
        return [
            head,
            {"type": "actions", "block_id": f"menu_{choices.menu_id}", "elements": [select]},
        ]
    # Too many for a menu: a numbered list, answered by typing the number or the value.
    listing = "\n".join(f"{i}) {escape(option)}" for i, option in enumerate(options, 1))
    sections = [_section(piece) for piece in _split_text(listing, SECTION_LIMIT)]
    return [head, *sections, _context("Answer with a number (or the value).")]


def render_block(block: Block, *, budget: int = SECTION_LIMIT) -> list[SlackBlock]:
    """One neutral block as Slack blocks; code and tables keep within `budget` characters."""
    budget = min(budget, SECTION_LIMIT)
    match block:
        case Text(text=text):
            return [_section(piece) for piece in _split_text(escape(text) or " ", SECTION_LIMIT)]
        case Code(lines=lines, more=more, link=link):
            return _code_blocks(lines, more, link, budget)
        case Table():
            return _table_blocks(block, budget)
        case Progress(percent=percent, message=message):
            bar = progress_bar(percent, "")
            tail = f" {escape(message)}" if message else ""
            return [_section(f"`{bar}`{tail}")]
        case Status(text=text, level=level):
            mark = _MARKS.get(level)
            body = escape(text)
            return [_section(f"{mark} {body}" if mark else body)]
        case File(name=name, size=size, job_id=job_id):
            where = f" (job {job_id})" if job_id is not None else ""
            return [_section(f":paperclip: *{escape(name)}* — {_size(size)}{where}")]
        case Choices():
            return _choices_blocks(block)
        case Actions(buttons=buttons):
            return _buttons(buttons, "actions")
    raise TypeError(f"unknown block {block!r}")  # pragma: no cover - exhaustive


def block_text(block: SlackBlock) -> str:
    """The text a person reads in one Slack block (also the message's fallback text)."""
    kind = block.get("type")
    if kind == "section":
        return str(block["text"]["text"])
    if kind == "context":
        return " ".join(str(e.get("text", "")) for e in block["elements"])
    if kind == "actions":
        labels: list[str] = []
        for element in block["elements"]:
            if element["type"] == "button":
                labels.append(f"[{element['text']['text']}]")
            else:
                labels.append(f"[{element['placeholder']['text']}]")
        return " ".join(labels)
    return ""


def _messages(blocks: Sequence[SlackBlock], limit: int) -> Iterator[list[SlackBlock]]:
    current: list[SlackBlock] = []
    used = 0
    for block in blocks:
        size = len(block_text(block)) + 1
        if current and (len(current) >= BLOCK_LIMIT or used + size > limit):
            yield current
            current, used = [], 0
        current.append(block)
        used += size
    if current:
        yield current


def _message(blocks: Sequence[SlackBlock]) -> SlackMessage:
    text = "\n".join(t for t in (block_text(b) for b in blocks) if t)
    return SlackMessage(text=text[:TEXT_LIMIT], blocks=tuple(blocks))


def _all_blocks(reply: Reply, limit: int) -> list[SlackBlock]:
    blocks: list[SlackBlock] = []
    for block in reply.blocks:
        blocks.extend(render_block(block, budget=limit - 100))
    return blocks or [_section(" ")]


@dataclass(frozen=True, slots=True)
class SlackRenderer:
    """Replies as Block Kit messages of at most `max_length` characters (a `Renderer`)."""

    max_length: int = 4000

    def render(self, reply: Reply) -> list[SlackMessage]:
        """A reply as one or more messages, each within `max_length` characters and 50 blocks."""
        limit = min(self.max_length, TEXT_LIMIT)
        return [_message(chunk) for chunk in _messages(_all_blocks(reply, limit), limit)]

    def render_single(self, reply: Reply) -> SlackMessage:
        """A reply as exactly one message (for chat.update): the end kept when it must shrink."""
        limit = min(self.max_length, TEXT_LIMIT)
        blocks = _all_blocks(reply, limit)
        chunks = list(_messages(blocks, limit))
        if len(chunks) == 1:
            return _message(chunks[0])
        note = _context("… earlier lines left out")
        kept: list[SlackBlock] = []
        used = len(block_text(note)) + 1
        for block in reversed(blocks):
            size = len(block_text(block)) + 1
            if used + size > limit or len(kept) >= BLOCK_LIMIT - 1:
                break
            kept.append(block)
            used += size
        kept.reverse()
        return _message([note, *kept])
