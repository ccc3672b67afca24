"""Plain-text renderer: how a reply looks in a terminal (`opsroom shell`, `opsroom run`).

Script output is the script's to choose, and a terminal obeys escape sequences: colours,
but also a new window title, the clipboard (OSC 52), hidden links (OSC 8), a cursor that
moves back over text already shown. `for_terminal` removes the sequences and shows every
other control character as a visible symbol before anything is written to a terminal.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

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
from opsroom.model.wire import dump_reply

DEFAULT_MAX_LINES = 40
_BAR_WIDTH = 24
_MARKS = {"success": "✔", "error": "✖", "warning": "!", "info": "·"}
# ESC or its 8-bit C1 form, then: CSI parameters and final byte; an OSC, DCS, SOS, PM or
# APC string up to its terminator (BEL or ST) or the line's end; any other escape.
_SEQUENCE = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\n\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[ -/]*[0-~]?"
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# `code` in the bot's own text is markup for chats that have it; a terminal shows the code.
_INLINE_CODE = re.compile(r"`([^`\n]+)`")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    if code < 0x20:
        return chr(0x2400 + code)  # the Control Pictures block: ␀ … ␟
    return "␡" if code == 0x7F else "\ufffd"


def for_terminal(text: str) -> str:
    """`text` safe to write to a terminal: escape sequences removed, other control
    characters (all but newline and tab) shown as visible symbols."""
    return _CONTROL.sub(_visible, _SEQUENCE.sub("", text))


def render_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Align a table in columns with a header rule."""
    widths = [len(c) for c in columns]
    for row in rows:
        for i, cell in enumerate(row[: len(widths)]):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=False)).rstrip()

    out = [line(columns), "  ".join("─" * w for w in widths)]
    out.extend(line(list(r) + [""] * (len(widths) - len(r))) for r in rows)
    return out


def progress_bar(percent: float | None, message: str = "") -> str:
    """A one-line progress bar: `[██████░░░░] 60% copying volume 3/5`."""
    if percent is None:
        return f"[{'·' * _BAR_WIDTH}] {message}".rstrip()
    p = max(0.0, min(100.0, percent))
    filled = round(_BAR_WIDTH * p / 100)
    bar = "█" * filled + "░" * (_BAR_WIDTH - filled)
    return f"[{bar}] {p:3.0f}% {message}".rstrip()


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover - loop always returns


def _code(block: Code, max_lines: int) -> list[str]:
    lines = list(block.lines)
    more = block.more
    if len(lines) > max_lines:
        more += len(lines) - max_lines
        lines = lines[-max_lines:]
    out = []
    if more:
        where = f" — full log: {block.link}" if block.link else ""
        out.append(f"… {more} more {'line' if more == 1 else 'lines'}{where}")
    out.extend(f"  {line}" for line in lines)
    return out


def _plain(text: str) -> str:
    """The bot's light markdown as a terminal shows it: `code` spans without backticks."""
    return _INLINE_CODE.sub(r"\1", text)


def render_block(block: Block, *, max_lines: int = DEFAULT_MAX_LINES) -> list[str]:
    """One neutral block as terminal lines."""
    match block:
        case Text(text=text):
            return _plain(text).splitlines() or [""]
        case Code():
            return _code(block, max_lines)
        case Table(columns=columns, rows=rows):
            return render_table(columns, rows)
        case Progress(percent=percent, message=message):
            return [progress_bar(percent, message)]
        case Status(text=text, level=level):
            # An error's usage stays on a line of its own.
            return f"{_MARKS.get(level, '·')} {_plain(text)}".splitlines()
        case Actions():
            return []  # the reply's text says what to type; terminals have no buttons
        case Choices(prompt=prompt, options=options):
            lines = [prompt]
            lines.extend(f"  {i}) {option}" for i, option in enumerate(options, 1))
            lines.append("Answer with a number (or the value).")
            return lines
        case File(name=name, size=size, job_id=job_id):
            where = f" (job {job_id})" if job_id is not None else ""
            return [f"📎 {name} — {_size(size)}{where}"]
    raise TypeError(f"unknown block {block!r}")  # pragma: no cover - exhaustive


def render_reply(reply: Reply, *, max_lines: int = DEFAULT_MAX_LINES) -> str:
    """A whole reply as terminal text."""
    lines: list[str] = []
    for block in reply.blocks:
        lines.extend(render_block(block, max_lines=max_lines))
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class TextRenderer:
    """Replies as terminal text (a `Renderer`): one message, script output cut at `max_lines`.

    The text is not yet safe to write to a terminal: pass it through `for_terminal`.
    """

    max_lines: int = DEFAULT_MAX_LINES

    def render(self, reply: Reply) -> list[str]:
        """The reply as one text."""
        return [render_reply(reply, max_lines=self.max_lines)]


def reply_to_dict(reply: Reply) -> dict[str, object]:
    """A reply as JSON data for people and programs: the web chat, the JSON API and
    `opsroom run --json`. The one serialised form (`model.wire.dump_reply`), plus `text`,
    the reply as a terminal shows it."""
    return {**dump_reply(reply), "text": render_reply(reply)}
