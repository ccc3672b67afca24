"""Teams renderer: a neutral reply as Bot Framework message activities (pure; no SDK).

Plain replies are Markdown (`textFormat: markdown`); a reply with buttons or a menu is an
Adaptive Card whose `Action.Submit` data carries the value (`{"opsroom": "approve:12"}`).
Teams refuses messages over about 28 KB of rendered content, so a message keeps within
`max_length` characters: long output keeps its last lines under "… N more lines — full log",
and what still does not fit is split across messages. Text from scripts is escaped so it
can neither inject HTML nor close a code fence.
"""

from __future__ import annotations

from collections.abc import Sequence
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

MAX_LENGTH = 12_000  # characters of one message; far below Teams' ~28 KB once rendered
CARD_VERSION = "1.4"  # Teams desktop and mobile render Adaptive Cards 1.4
CARD_TYPE = "application/vnd.microsoft.card.adaptive"
CARD_KEY = "opsroom"  # Submit data key carrying the value (translate.CARD_KEY)
BUTTONS_FOR_CHOICES = 5  # up to this many choices are buttons, more a drop-down
CHOICE_SET_LIMIT = 100  # beyond this a numbered list, answered by typing
LABEL_LIMIT = 60
_MARKS = {"success": "✅", "error": "❌", "warning": "⚠️"}
_FENCE = "```"


@dataclass(frozen=True, slots=True)
class TeamsMessage:
    """The content of one message activity: Markdown text, or an Adaptive Card."""

    text: str
    card: dict[str, Any] | None = None

    def payload(self) -> dict[str, Any]:
        """The activity body for POST/PUT .../activities."""
        if self.card is None:
            return {"type": "message", "text": self.text, "textFormat": "markdown"}
        return {
            "type": "message",
            "attachments": [{"contentType": CARD_TYPE, "content": self.card}],
        }


def escape(text: str) -> str:
    """Text that shows as written: no HTML, no `<at>` tags."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _code_line(line: str) -> str:
    return line.replace(_FENCE, "``\u200b`")


def _label(text: str) -> str:
    return text if len(text) <= LABEL_LIMIT else text[: LABEL_LIMIT - 1] + "…"


def more_line(count: int, what: str, link: str | None) -> str:
    """`… 12 more lines — [full log](https://…)`."""
    if count == 1:
        what = what.removesuffix("s")
    if link and link.startswith(("https://", "http://")):
        where = f" — [full log]({link})"
    elif link:
        where = f" — full log: `{link}`"
    else:
        where = ""
    return f"… {count} more {what}{where}"


def _tail(lines: Sequence[str], budget: int) -> list[str]:
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


def _code(block: Code, budget: int) -> str:
    lines = [_code_line(line) for line in block.lines]
    kept = _tail(lines, max(budget - 2 * len(_FENCE) - 200, 0))
    left_out = block.more + len(lines) - len(kept)
    parts = [more_line(left_out, "lines", block.link)] if left_out else []
    if kept:
        parts.append(_FENCE + "\n" + "\n".join(kept) + "\n" + _FENCE)
    return "\n\n".join(parts)


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def _numbered(choices: Choices) -> str:
    listing = "\n".join(f"{i}. {escape(o)}" for i, o in enumerate(choices.options, 1))
    return f"{escape(choices.prompt)}\n\n{listing}\n\nAnswer with a number (or the value)."


def block_markdown(block: Block, *, budget: int = MAX_LENGTH) -> str:
    """One neutral block as Markdown (buttons as their labels: cards carry the buttons)."""
    match block:
        case Text(text=text):
            return escape(text)
        case Code():
            return _code(block, budget)
        case Table(columns=columns, rows=rows):
            lines = [_code_line(line) for line in render_table(columns, rows)]
            kept = lines[: max(1, len(_tail(lines, budget - 200)))]
            more = len(lines) - len(kept)
            table = _FENCE + "\n" + "\n".join(kept) + "\n" + _FENCE
            return table + (f"\n\n{more_line(more, 'rows', None)}" if more else "")
        case Progress(percent=percent, message=message):
            tail = f" {escape(message)}" if message else ""
            return f"`{progress_bar(percent, '')}`{tail}"
        case Status(text=text, level=level):
            mark = _MARKS.get(level)
            return f"{mark} {escape(text)}" if mark else escape(text)
        case File(name=name, size=size, job_id=job_id):
            where = f" (job {job_id})" if job_id is not None else ""
            return f"📎 **{escape(name)}** — {_size(size)}{where}"
        case Choices():
            if len(block.options) > CHOICE_SET_LIMIT:
                return _numbered(block)
            return escape(block.prompt)
        case Actions(buttons=buttons):
            return " ".join(f"[{_label(label)}]" for label, _ in buttons)
    raise TypeError(f"unknown block {block!r}")  # pragma: no cover - exhaustive


def _submit(label: str, value: str) -> dict[str, Any]:
    action: dict[str, Any] = {
        "type": "Action.Submit",
        "title": _label(label),
        "data": {CARD_KEY: value},
    }
    if value.startswith("approve:"):
        action["style"] = "positive"
    elif value.startswith("deny:"):
        action["style"] = "destructive"
    return action


def _text_block(text: str, *, mono: bool = False) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "TextBlock", "text": text, "wrap": True}
    if mono:
        block["fontType"] = "Monospace"
    return block


def card(reply: Reply, *, max_length: int = MAX_LENGTH) -> dict[str, Any]:
    """A reply with buttons or a menu as one Adaptive Card."""
    body: list[dict[str, Any]] = []
    actions: list[dict[str, Any]] = []
    fixed = sum(len(block_markdown(b)) for b in reply.blocks if not isinstance(b, Code | Table))
    budget = max(max_length - fixed - 200, 400)
    for block in reply.blocks:
        if isinstance(block, Actions):
            actions.extend(_submit(label, value) for label, value in block.buttons)
        elif isinstance(block, Choices) and len(block.options) <= CHOICE_SET_LIMIT:
            body.append(_text_block(escape(block.prompt)))
            values = [(o, f"menu:{block.menu_id}:{i}") for i, o in enumerate(block.options)]
            if len(values) <= BUTTONS_FOR_CHOICES:
                actions.extend(_submit(label, value) for label, value in values)
            else:
                body.append(
                    {
                        "type": "Input.ChoiceSet",
                        "id": CARD_KEY,
                        "style": "compact",
                        "placeholder": "Choose…",
                        "choices": [{"title": _label(t), "value": v} for t, v in values],
                    }
                )
                actions.append({"type": "Action.Submit", "title": "Choose"})
        else:
            text = block_markdown(block, budget=budget)
            if text:
                body.append(_text_block(text, mono=isinstance(block, Code | Table)))
    return {
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": CARD_VERSION,
        "body": body or [_text_block(" ")],
        "actions": actions,
    }


def _interactive(reply: Reply) -> bool:
    return any(
        isinstance(b, Actions) or (isinstance(b, Choices) and len(b.options) <= CHOICE_SET_LIMIT)
        for b in reply.blocks
    )


def _split(text: str, limit: int) -> list[str]:
    """Pieces of at most `limit` characters, cut at line ends (code fences kept whole)."""
    pieces: list[str] = []
    while len(text) > limit:
        cut = text.rfind("\n", 0, limit - len(_FENCE) - 1)
        cut = cut if cut > 0 else limit - len(_FENCE) - 1
        head, text = text[:cut], text[cut:].lstrip("\n")
        if head.count(_FENCE) % 2:  # cut inside a code block: close it here, reopen after
            head, text = head + "\n" + _FENCE, _FENCE + "\n" + text
        pieces.append(head)
    pieces.append(text)
    return pieces


def _parts(reply: Reply, limit: int) -> list[str]:
    fixed = sum(len(block_markdown(b)) + 2 for b in reply.blocks if not isinstance(b, Code | Table))
    codes = sum(1 for b in reply.blocks if isinstance(b, Code | Table)) or 1
    # Output gives way first: what the text and status say is kept whole where it fits.
    budget = max((limit - fixed) // codes, min(limit, 1000))
    return [p for p in (block_markdown(b, budget=min(budget, limit)) for b in reply.blocks) if p]


@dataclass(frozen=True, slots=True)
class TeamsRenderer:
    """Replies as message activities of at most `max_length` characters (a `Renderer`)."""

    max_length: int = MAX_LENGTH

    def render(self, reply: Reply) -> list[TeamsMessage]:
        """A reply as one or more messages, each within `max_length` characters."""
        max_length = self.max_length
        if _interactive(reply):
            content = card(reply, max_length=max_length)
            return [TeamsMessage(text=card_text(content), card=content)]
        messages: list[str] = []
        current = ""
        for part in _parts(reply, max_length):
            for piece in _split(part, max_length):
                joined = f"{current}\n\n{piece}" if current else piece
                if len(joined) <= max_length:
                    current = joined
                else:
                    messages.append(current)
                    current = piece
        messages.append(current or " ")
        return [TeamsMessage(text=m) for m in messages]

    def render_single(self, reply: Reply) -> TeamsMessage:
        """A reply as exactly one message (for an update in place): the end kept to fit."""
        max_length = self.max_length
        messages = self.render(reply)
        if len(messages) == 1:
            return messages[0]
        note = "… earlier lines left out"
        kept: list[str] = []
        used = len(note)
        for message in reversed(messages):
            for piece in reversed(message.text.split("\n\n")):
                if used + len(piece) + 2 > max_length:
                    return TeamsMessage(text="\n\n".join([note, *reversed(kept)]))
                kept.append(piece)
                used += len(piece) + 2
        return TeamsMessage(text="\n\n".join([note, *reversed(kept)]))


def card_text(content: dict[str, Any]) -> str:
    """What a person reads on a card: its text blocks and [button] labels."""
    lines = [
        str(b.get("text", "")) for b in content.get("body", []) if b.get("type") == "TextBlock"
    ]
    for b in content.get("body", []):
        if b.get("type") == "Input.ChoiceSet":
            lines.append(" ".join(f"({c['title']})" for c in b.get("choices", [])))
    labels = " ".join(f"[{a.get('title', '')}]" for a in content.get("actions", []))
    return "\n".join([*lines, labels] if labels else lines)
