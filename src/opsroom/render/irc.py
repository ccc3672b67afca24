"""IRC renderer: a reply as plain lines, each one PRIVMSG within the protocol's 512 bytes.

IRC has no edits, threads, buttons or multi-line messages, so a reply becomes a short list
of lines: long lines are split on word boundaries; script output keeps its last
`max_lines` lines behind "… N more lines — <the job's web page, or !job N>"; tables are
aligned text, menus a numbered list, buttons left out (the reply's text says what to
type). Control characters from scripts (ANSI colours, IRC formatting, CTCP markers) are
removed; the only formatting is the bold the renderer puts on status lines.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
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
from opsroom.render.text import render_block, render_table

BOLD = "\x02"
MAX_LINE_BYTES = 400  # of message text; leaves room for ":nick!user@host PRIVMSG #chan :"
DEFAULT_MAX_LINES = 10  # script-output lines shown per reply
MAX_REPLY_LINES = 25  # any reply, all blocks together
_MARKS = {"success": "✔", "error": "✖", "warning": "!", "info": "·"}
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def clean(text: str) -> str:
    """Text without ANSI escapes or control characters (tabs become spaces)."""
    return _CONTROL.sub("", _ANSI.sub("", text)).replace("\t", "    ").rstrip()


def _cut(word: str, max_bytes: int) -> Iterator[str]:
    """A word longer than a line, cut at character boundaries."""
    piece = ""
    for ch in word:
        if len((piece + ch).encode()) > max_bytes:
            yield piece
            piece = ""
        piece += ch
    if piece:
        yield piece


def split_line(text: str, max_bytes: int = MAX_LINE_BYTES) -> list[str]:
    """One line as pieces of at most `max_bytes` UTF-8 bytes, split between words."""
    if len(text.encode()) <= max_bytes:
        return [text]
    out: list[str] = []
    current = ""
    for word in re.split(r"(?<= )", text):  # each word keeps its trailing space
        if len((current + word).rstrip().encode()) <= max_bytes:
            current += word
            continue
        if current.strip():
            out.append(current.rstrip())
        current = ""
        if len(word.rstrip().encode()) > max_bytes:
            *whole, current = _cut(word.rstrip(), max_bytes)
            out.extend(whole)
            current += " " if word.endswith(" ") else ""
        else:
            current = word
    if current.strip():
        out.append(current.rstrip())
    return out


def _more(count: int, reply: Reply, link: str | None, prefix: str) -> str:
    """`… N more lines — <where>`: the job's page when there is one (a URL IRC clients
    make clickable), else the command that shows the job."""
    lines = "line" if count == 1 else "lines"
    if link and link.startswith(("https://", "http://")):
        return f"… {count} more {lines} — {link}"
    if reply.job_id is not None:
        return f"… {count} more {lines} — {prefix}job {reply.job_id}"
    if link:
        return f"… {count} more {lines} — {link}"
    return f"… {count} more {lines}"


def _page_link(reply: Reply) -> str | None:
    """The web address of the job's full log, when a block of the reply carries one."""
    for block in reply.blocks:
        if (
            isinstance(block, Code)
            and block.link
            and block.link.startswith(("https://", "http://"))
        ):
            return block.link
    return None


def _code(block: Code, reply: Reply, *, max_bytes: int, max_lines: int, prefix: str) -> list[str]:
    """The tail of the output that fits `max_lines` lines once split, behind a 'more' line."""
    source = [c for c in (clean(line) for line in block.lines) if c]
    shown: list[list[str]] = []
    used = 0
    budget = max_lines
    for line in reversed(source):
        pieces = split_line(line, max_bytes)
        if used + len(pieces) > budget:
            break
        shown.append(pieces)
        used += len(pieces)
    hidden = block.more + len(source) - len(shown)
    lines = [piece for pieces in reversed(shown) for piece in pieces]
    if hidden:
        lines.insert(0, _more(hidden, reply, block.link, prefix))
    return lines


def _block(block: Block, *, max_bytes: int) -> list[str]:
    match block:
        case Status(text=text, level=level):
            raw = [f"{_MARKS.get(level, '·')} {clean(text)}"]
        case Table(columns=columns, rows=rows):
            cols = tuple(clean(c) for c in columns)
            raw = render_table(cols, [tuple(clean(c) for c in row) for row in rows])
        case Choices(prompt=prompt, options=options):
            raw = [clean(prompt), *(f"{i}) {clean(o)}" for i, o in enumerate(options, 1))]
            raw.append("Answer with a number (or the value).")
        case Actions():
            raw = []  # no buttons on IRC; the reply's text says what to type
        case Text(text=text):
            raw = [clean(line) for line in text.splitlines()]
        case Progress() | File():
            raw = [clean(line) for line in render_block(block)]
        case _:  # pragma: no cover - Code is handled by the caller
            raw = []
    lines = [piece for line in raw if line for piece in split_line(line, max_bytes)]
    if isinstance(block, Status):
        # Bold must open and close on every line: IRC resets formatting per message.
        return [f"{BOLD}{line}{BOLD}" for line in split_line(raw[0], max_bytes - 2)]
    return lines


@dataclass(frozen=True, slots=True)
class IrcRenderer:
    """Replies as IRC lines (a `Renderer`): each line one PRIVMSG of at most `max_bytes`.

    `max_lines` lines of script output are shown, `max_reply_lines` lines in all; the
    marker for what is left out names `prefix`'s `job N` command when no web page exists.
    """

    max_bytes: int = MAX_LINE_BYTES
    max_lines: int = DEFAULT_MAX_LINES
    max_reply_lines: int = MAX_REPLY_LINES
    prefix: str = "!"

    def render(self, reply: Reply) -> list[str]:
        """The lines (one PRIVMSG each) that show `reply` on IRC."""
        max_bytes, prefix = self.max_bytes, self.prefix
        lines: list[str] = []
        outcome: list[str] = []  # a job's last status line(s): never the ones left out
        for i, block in enumerate(reply.blocks):
            if isinstance(block, Code):
                lines.extend(
                    _code(
                        block, reply, max_bytes=max_bytes, max_lines=self.max_lines, prefix=prefix
                    )
                )
            elif i == len(reply.blocks) - 1 and isinstance(block, Status):
                outcome = _block(block, max_bytes=max_bytes)
            else:
                lines.extend(_block(block, max_bytes=max_bytes))
        if len(lines) + len(outcome) > self.max_reply_lines:
            room = max(0, self.max_reply_lines - 1 - len(outcome))
            hidden = len(lines) - room
            lines = [*lines[:room], _more(hidden, reply, _page_link(reply), prefix)]
        return [*lines, *outcome]
