"""Mattermost renderer: a reply as posts (Markdown `message` + interactive `attachments`).

Pure: no Mattermost library. Mattermost renders Markdown, including tables; script output
goes in fenced code blocks it cannot close (a fence in the output is broken up), and the
bot's own text has its `@` mentions defused, so nothing a script prints or a person typed
notifies `@channel` (Mattermost never notifies for mentions inside code blocks). Buttons
are interactive-message actions; their `integration` (the URL Mattermost calls and the
context it sends back) is given by the adapter, which alone knows where opsroom listens.
Without one, buttons are left out: the reply's text says what to type.
"""

from __future__ import annotations

import re
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
from opsroom.render.text import progress_bar

MAX_LENGTH = 16_000  # characters of one post; Mattermost's default MaxPostSize is 16,383
BUTTONS_FOR_CHOICES = 5  # up to this many choices are buttons, more a select menu
SELECT_LIMIT = 100  # options of one select menu; beyond, a numbered list
LABEL_LIMIT = 60  # characters of a button label
_MARKS = {"success": ":white_check_mark:", "error": ":x:", "warning": ":warning:"}
_FENCE = "```"
_MENTION = re.compile(r"(?<![\w.@])@(?=[\w.\-])")
_SEPARATOR = "\n\n"

Attachment = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Integration:
    """Where a click goes: the URL Mattermost POSTs to and context it carries back."""

    url: str
    context: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MattermostPost:
    """One post's content: Markdown `message` plus interactive-message attachments."""

    message: str
    attachments: tuple[Attachment, ...] = ()

    def payload(self) -> dict[str, Any]:
        """The body fields for POST /api/v4/posts and PUT /api/v4/posts/{id}/patch."""
        # An edit must say "no attachments" too, or the old buttons stay on the post.
        return {"message": self.message, "props": {"attachments": list(self.attachments)}}


def defuse(text: str) -> str:
    """Text with `@` mentions (`@channel`, `@all`, `@alice`) shown but notifying nobody."""
    return _MENTION.sub("@\u200b", text)


def _code_line(line: str) -> str:
    # A fence inside output would end the code block early and let the rest be Markdown.
    return line.replace(_FENCE, "``\u200b`").replace("~~~", "~~\u200b~")


def _more(count: int, what: str, link: str | None) -> str:
    if link and link.startswith(("https://", "http://")):
        where = f" — [full log]({link.replace(')', '%29').replace(' ', '%20')})"
    elif link:
        where = f" — full log: `{link}`"
    else:
        where = ""
    if count == 1:
        what = what.removesuffix("s")
    return f"_… {count} more {what}{where}_"


def _tail_that_fits(lines: Sequence[str], budget: int) -> list[str]:
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


def _code(block: Code, budget: int) -> list[str]:
    lines = [_code_line(line) for line in block.lines]
    room = max(budget - 2 * len(_FENCE) - 2 - 120, 40)  # the "more" line's own share
    kept = _tail_that_fits(lines, room)
    left_out = block.more + len(lines) - len(kept)
    parts = []
    if left_out:
        parts.append(_more(left_out, "lines", block.link))
    if kept:
        parts.append(_FENCE + "\n" + "\n".join(kept) + "\n" + _FENCE)
    return parts


def _cell(text: str) -> str:
    return defuse(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ") or " "


def _table(table: Table, budget: int) -> list[str]:
    lines = [
        "| " + " | ".join(_cell(c) for c in table.columns) + " |",
        "|" + "|".join(" --- " for _ in table.columns) + "|",
    ]
    used = sum(len(line) + 1 for line in lines)
    shown = 0
    for row in table.rows:
        cells = list(row) + [""] * (len(table.columns) - len(row))
        line = "| " + " | ".join(_cell(c) for c in cells[: len(table.columns)]) + " |"
        if used + len(line) + 1 > budget - 80:
            break
        lines.append(line)
        used += len(line) + 1
        shown += 1
    parts = ["\n".join(lines)]
    if shown < len(table.rows):
        parts.append(_more(len(table.rows) - shown, "rows", None))
    return parts


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def _label(text: str) -> str:
    return text if len(text) <= LABEL_LIMIT else text[: LABEL_LIMIT - 1] + "…"


def _buttons(
    buttons: Sequence[tuple[str, str]], integration: Integration, text: str = ""
) -> Attachment:
    actions: list[dict[str, Any]] = []
    for i, (label, value) in enumerate(buttons):
        style = "default"
        if value.startswith("approve:"):
            style = "primary"
        elif value.startswith("deny:"):
            style = "danger"
        actions.append(
            {
                # Action ids are letters and digits only: Mattermost mishandles "_" and "-".
                "id": f"opsroom{i}",
                "name": _label(label),
                "type": "button",
                "style": style,
                "integration": {
                    "url": integration.url,
                    "context": {**integration.context, "value": value},
                },
            }
        )
    return {"fallback": text or " ".join(f"[{label}]" for label, _ in buttons), "actions": actions}


def _select(choices: Choices, integration: Integration) -> Attachment:
    options = [
        {"text": _label(option), "value": f"menu:{choices.menu_id}:{i}"}
        for i, option in enumerate(choices.options)
    ]
    return {
        "fallback": "[Choose…]",
        "actions": [
            {
                "id": "opsroommenu",
                "name": "Choose…",
                "type": "select",
                "options": options,
                "integration": {"url": integration.url, "context": dict(integration.context)},
            }
        ],
    }


def _numbered(choices: Choices) -> str:
    listing = "\n".join(f"{i}. {defuse(o)}" for i, o in enumerate(choices.options, 1))
    return f"{listing}\n\n_Answer with a number (or the value)._"


def render_block(
    block: Block, *, budget: int = MAX_LENGTH, integration: Integration | None = None
) -> tuple[list[str], list[Attachment]]:
    """One neutral block as Markdown paragraphs and attachments (buttons)."""
    match block:
        case Text(text=text):
            return [defuse(text) or " "], []
        case Code():
            return _code(block, budget), []
        case Table():
            return _table(block, budget), []
        case Progress(percent=percent, message=message):
            tail = f" {defuse(message)}" if message else ""
            return [f"`{progress_bar(percent, '')}`{tail}"], []
        case Status(text=text, level=level):
            mark = _MARKS.get(level)
            body = defuse(text)
            return [f"{mark} {body}" if mark else body], []
        case File(name=name, size=size, job_id=job_id):
            where = f" (job {job_id})" if job_id is not None else ""
            return [f":paperclip: **{defuse(name)}** — {_size(size)}{where}"], []
        case Choices(prompt=prompt, options=options, menu_id=menu_id):
            head = defuse(prompt)
            if integration is None or len(options) > SELECT_LIMIT:
                return [head, _numbered(block)], []
            if len(options) <= BUTTONS_FOR_CHOICES:
                values = [(o, f"menu:{menu_id}:{i}") for i, o in enumerate(options)]
                return [head], [_buttons(values, integration)]
            return [head], [_select(block, integration)]
        case Actions(buttons=buttons):
            if integration is None or not buttons:
                return [], []
            return [], [_buttons(buttons, integration)]
    raise TypeError(f"unknown block {block!r}")  # pragma: no cover - exhaustive


def attachment_text(attachment: Mapping[str, Any]) -> str:
    """What a person reads of an attachment's buttons: `[Approve] [Deny]`."""
    return " ".join(f"[{a.get('name', '')}]" for a in attachment.get("actions") or [])


def _split(text: str, limit: int) -> list[str]:
    pieces: list[str] = []
    while len(text) > limit:
        cut = text.rfind("\n", 0, limit)
        cut = cut if cut > 0 else limit
        pieces.append(text[:cut])
        text = text[cut:].lstrip("\n")
    pieces.append(text)
    return pieces


def _parts(
    reply: Reply, limit: int, integration: Integration | None
) -> tuple[list[str], list[Attachment]]:
    parts: list[str] = []
    attachments: list[Attachment] = []
    for block in reply.blocks:
        texts, more = render_block(block, budget=limit, integration=integration)
        for text in texts:
            parts.extend(_split(text, limit))
        attachments.extend(more)
    return parts or [" "], attachments


@dataclass(frozen=True, slots=True)
class MattermostRenderer:
    """Replies as posts of at most `max_length` characters (a `Renderer`).

    With an `integration`, buttons and menus post their clicks to it; without one a
    menu is a numbered list people answer by typing.
    """

    max_length: int = MAX_LENGTH
    integration: Integration | None = None

    def render(self, reply: Reply) -> list[MattermostPost]:
        """A reply as one or more posts, each within `max_length`; buttons on the last one."""
        limit = min(self.max_length, MAX_LENGTH)
        parts, attachments = _parts(reply, limit, self.integration)
        messages: list[str] = []
        current = ""
        for part in parts:
            candidate = f"{current}{_SEPARATOR}{part}" if current else part
            if current and len(candidate) > limit:
                messages.append(current)
                current = part
            else:
                current = candidate
        messages.append(current)
        posts = [MattermostPost(m) for m in messages]
        posts[-1] = MattermostPost(posts[-1].message, tuple(attachments))
        return posts

    def render_single(self, reply: Reply) -> MattermostPost:
        """A reply as exactly one post (for an edit): the end kept when it must shrink."""
        limit = min(self.max_length, MAX_LENGTH)
        parts, attachments = _parts(reply, limit, self.integration)
        whole = _SEPARATOR.join(parts)
        if len(whole) <= limit:
            return MattermostPost(whole, tuple(attachments))
        note = "_… earlier lines left out_"
        kept: list[str] = []
        used = len(note)
        for part in reversed(parts):
            if used + len(part) + len(_SEPARATOR) > limit:
                break
            kept.append(part)
            used += len(part) + len(_SEPARATOR)
        kept.reverse()
        return MattermostPost(_SEPARATOR.join([note, *kept]), tuple(attachments))
