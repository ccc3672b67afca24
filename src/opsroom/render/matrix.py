"""Matrix renderer: a reply as `m.room.message` contents (plain `body` + HTML `formatted_body`).

Every piece of text — script output included — is HTML-escaped before it is placed in the
markup, so output can never inject tags or links. A reply that does not fit one event is
shortened the way SPEC §5.2 asks (the head of long output gives way to "N more lines", the
end stays visible); what still does not fit is split across several messages. Matrix has no
buttons: menus are numbered lists and action buttons are left out (the reply's text says
what to type).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, replace
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

MAX_LENGTH = 16_000  # characters of `body`; with the HTML twin this stays far below 64 KiB
MAX_EVENT_BYTES = 60_000  # body + formatted_body, UTF-8; Synapse refuses events over 65,536
HTML_FORMAT = "org.matrix.custom.html"
_MARKS = {"success": "✔", "error": "✖", "warning": "⚠", "info": "·"}
_INLINE_CODE = re.compile(r"`([^`\n]+)`")


@dataclass(frozen=True, slots=True)
class _Part:
    plain: str
    html: str


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _text_html(text: str) -> str:
    escaped = _INLINE_CODE.sub(r"<code>\1</code>", _esc(text))
    return escaped.replace("\n", "<br/>")


def _more_line(block: Code) -> _Part | None:
    if not block.more:
        return None
    plain = f"… {block.more} more {'line' if block.more == 1 else 'lines'}"
    markup = _esc(plain)
    if block.link:
        plain += f" — full log: {block.link}"
        if block.link.startswith(("https://", "http://")):
            link = f'<a href="{_esc(block.link)}">{_esc(block.link)}</a>'
        else:
            link = _esc(block.link)
        markup += f" — full log: {link}"
    return _Part(plain, f"<p><em>{markup}</em></p>")


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def _table(columns: tuple[str, ...], rows: tuple[tuple[str, ...], ...]) -> _Part:
    head = "".join(f"<th>{_esc(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in r) + "</tr>" for r in rows)
    plain = "\n".join(render_table(columns, rows))
    return _Part(plain, f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def _parts(block: Block) -> list[_Part]:
    match block:
        case Text(text=text):
            return [_Part(text, f"<p>{_text_html(text)}</p>")]
        case Code():
            more = _more_line(block)
            lines = "\n".join(block.lines)
            code = _Part(lines, f"<pre><code>{_esc(lines)}</code></pre>") if block.lines else None
            return [p for p in (more, code) if p is not None]
        case Table(columns=columns, rows=rows):
            return [_table(columns, rows)]
        case Progress(percent=percent, message=message):
            bar = progress_bar(percent, message)
            return [_Part(bar, f"<p><code>{_esc(bar)}</code></p>")]
        case Status(text=text, level=level):
            mark = _MARKS.get(level, "·")
            # An error's usage goes on its own line, as in every other renderer.
            shown = _esc(text).replace("\n", "<br/>")
            return [_Part(f"{mark} {text}", f"<p>{mark} <strong>{shown}</strong></p>")]
        case File(name=name, size=size, job_id=job_id):
            where = f" (job {job_id})" if job_id is not None else ""
            plain = f"📎 {name} — {_size(size)}{where}"
            return [_Part(plain, f"<p>📎 <strong>{_esc(name)}</strong> — {_size(size)}{where}</p>")]
        case Choices(prompt=prompt, options=options):
            numbered = [f"{i}) {option}" for i, option in enumerate(options, 1)]
            hint = "Answer with a number (or the value)."
            items = "".join(f"<li>{_esc(o)}</li>" for o in options)
            return [
                _Part(
                    "\n".join([prompt, *numbered, hint]),
                    f"<p>{_text_html(prompt)}</p><ol>{items}</ol><p>{hint}</p>",
                )
            ]
        case Actions():
            return []  # no buttons on Matrix; the reply's text says what to type
    raise TypeError(f"unknown block {block!r}")  # pragma: no cover - exhaustive


def _fits(parts: list[_Part], max_length: int) -> bool:
    plain = "\n".join(p.plain for p in parts)
    markup = "".join(p.html for p in parts)
    size = len(plain.encode()) + len(markup.encode())
    return len(plain) <= max_length and size <= MAX_EVENT_BYTES


def _all_parts(blocks: tuple[Block, ...]) -> list[_Part]:
    return [part for block in blocks for part in _parts(block)]


def _shorten_code(blocks: tuple[Block, ...], max_length: int) -> tuple[Block, ...]:
    """Drop the oldest lines of the longest output until the reply fits one message."""
    while not _fits(_all_parts(blocks), max_length):
        codes = [i for i, b in enumerate(blocks) if isinstance(b, Code) and b.lines]
        if not codes:
            return blocks
        at = max(codes, key=lambda i: len("\n".join(blocks[i].lines)))  # type: ignore[union-attr]
        code = blocks[at]
        assert isinstance(code, Code)
        low, high = 0, len(code.lines) - 1  # lines kept: the most that fit
        while low < high:
            keep = (low + high + 1) // 2
            trial = _trim(code, keep)
            if _fits(_all_parts((*blocks[:at], trial, *blocks[at + 1 :])), max_length):
                low = keep
            else:
                high = keep - 1
        blocks = (*blocks[:at], _trim(code, low), *blocks[at + 1 :])
    return blocks


def _trim(code: Code, keep: int) -> Code:
    dropped = len(code.lines) - keep
    return replace(code, lines=code.lines[dropped:], more=code.more + dropped)


def _split_part(part: _Part, max_length: int) -> list[_Part]:
    """A part too large for any message, cut at line breaks (or hard, for one huge line)."""
    budget = max(1, min(max_length, MAX_EVENT_BYTES // 8))  # escaping may grow text 6-fold
    chunks: list[str] = []
    current = ""
    for line in part.plain.split("\n"):
        while len(line) > budget:
            if current:
                chunks.append(current)
                current = ""
            chunks.append(line[:budget])
            line = line[budget:]
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > budget and current:
            chunks.append(current)
            current = line
        else:
            current = candidate
    if current:
        chunks.append(current)
    return [_Part(c, f"<pre><code>{_esc(c)}</code></pre>") for c in chunks]


def _content(parts: list[_Part], msgtype: str) -> dict[str, Any]:
    return {
        "msgtype": msgtype,
        "body": "\n".join(p.plain for p in parts),
        "format": HTML_FORMAT,
        "formatted_body": "".join(p.html for p in parts),
    }


@dataclass(frozen=True, slots=True)
class MatrixRenderer:
    """Replies as `m.room.message` contents of at most `max_length` characters (a `Renderer`)."""

    max_length: int = MAX_LENGTH

    def render(self, reply: Reply) -> list[dict[str, Any]]:
        """A reply as one or more `m.room.message` contents, each within `max_length` chars."""
        max_length = self.max_length
        # A question the person must answer is a message; everything else a bot says is a notice.
        msgtype = "m.text" if any(isinstance(b, Choices) for b in reply.blocks) else "m.notice"
        parts = _all_parts(_shorten_code(reply.blocks, max_length))
        messages: list[list[_Part]] = [[]]
        for part in parts:
            pieces = [part] if _fits([part], max_length) else _split_part(part, max_length)
            for piece in pieces:
                if messages[-1] and not _fits([*messages[-1], piece], max_length):
                    messages.append([])
                messages[-1].append(piece)
        return [_content(m, msgtype) for m in messages]
