"""Replies as plain JSON data and back, losslessly: the one serialised form of a reply.

`dump_reply` gives a dict of JSON types only; `load_reply(dump_reply(r)) == r` for every
block type. It is what every path writes: replies kept for a platform that is down, the
web chat's events, the JSON API's answers and `opsroom run --json` (those three add the
reply as plain text, `render.text.reply_to_dict`). `load_reply` checks what it reads:
damaged data gives a ValueError naming the bad field, never a half-built Reply.
"""

from __future__ import annotations

from collections.abc import Mapping
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


def dump_reply(reply: Reply) -> dict[str, Any]:
    """A reply as a dict of JSON types (every block, every field)."""
    return {
        "kind": reply.kind,
        "job_id": reply.job_id,
        "blocks": [dump_block(b) for b in reply.blocks],
    }


def dump_block(block: Block) -> dict[str, Any]:
    """One block as a dict of JSON types, tagged with its `type`."""
    match block:
        case Text(text=text):
            return {"type": "text", "text": text}
        case Code(lines=lines, more=more, link=link):
            return {"type": "code", "lines": list(lines), "more": more, "link": link}
        case Table(columns=columns, rows=rows):
            return {"type": "table", "columns": list(columns), "rows": [list(r) for r in rows]}
        case Progress(percent=percent, message=message):
            return {"type": "progress", "percent": percent, "message": message}
        case Status(text=text, level=level):
            return {"type": "status", "text": text, "level": level}
        case File(name=name, size=size, job_id=job_id, content_type=content_type):
            return {
                "type": "file",
                "name": name,
                "size": size,
                "job_id": job_id,
                "content_type": content_type,
            }
        case Choices(prompt=prompt, options=options, menu_id=menu_id):
            # `menu` is what a click sends back as `menu_id` (POST .../choose).
            return {"type": "choices", "prompt": prompt, "options": list(options), "menu": menu_id}
        case Actions(buttons=buttons):
            return {
                "type": "actions",
                "buttons": [{"label": label, "value": value} for label, value in buttons],
            }
    raise TypeError(f"not a block: {block!r}")  # pragma: no cover - Block is closed


def load_reply(data: Mapping[str, Any]) -> Reply:
    """The Reply `dump_reply` made; ValueError when the data is not one."""
    blocks = data.get("blocks")
    if not isinstance(blocks, list):
        raise ValueError("reply.blocks: expected a list")
    return Reply(
        tuple(load_block(b, f"reply.blocks[{i}]") for i, b in enumerate(blocks)),
        job_id=_opt_int(data, "job_id", "reply"),
        kind=_str(data, "kind", "reply"),
    )


def load_block(data: Any, where: str = "block") -> Block:
    """One block from its dict; ValueError naming `where` when it is not one."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: expected an object")
    kind = data.get("type")
    match kind:
        case "text":
            return Text(_str(data, "text", where))
        case "code":
            return Code(
                _strs(data, "lines", where),
                more=_int(data, "more", where),
                link=_opt_str(data, "link", where),
            )
        case "table":
            rows = data.get("rows")
            if not isinstance(rows, list):
                raise ValueError(f"{where}.rows: expected a list")
            return Table(
                _strs(data, "columns", where),
                tuple(_strs({"row": r}, "row", f"{where}.rows[{i}]") for i, r in enumerate(rows)),
            )
        case "progress":
            percent = data.get("percent")
            if percent is not None and (
                isinstance(percent, bool) or not isinstance(percent, int | float)
            ):
                raise ValueError(f"{where}.percent: expected a number or null")
            return Progress(percent, _str(data, "message", where))
        case "status":
            return Status(_str(data, "text", where), _str(data, "level", where))
        case "file":
            return File(
                _str(data, "name", where),
                _int(data, "size", where),
                job_id=_opt_int(data, "job_id", where),
                content_type=_str(data, "content_type", where),
            )
        case "choices":
            # Replies kept by an earlier version name the menu `menu_id`.
            menu = "menu_id" if "menu_id" in data and "menu" not in data else "menu"
            return Choices(
                _str(data, "prompt", where),
                _strs(data, "options", where),
                _str(data, menu, where),
            )
        case "actions":
            buttons = data.get("buttons")
            if not isinstance(buttons, list):
                raise ValueError(f"{where}.buttons: expected a list")
            return Actions(
                tuple(_button(b, f"{where}.buttons[{i}]") for i, b in enumerate(buttons))
            )
    raise ValueError(f"{where}.type: unknown block type {kind!r}")


def _button(data: Any, where: str) -> tuple[str, str]:
    """A button: `{"label": ..., "value": ...}`, or an earlier version's `[label, value]`."""
    if isinstance(data, Mapping):
        return _str(data, "label", where), _str(data, "value", where)
    pair = _strs({"b": data}, "b", where)
    if len(pair) != 2:
        raise ValueError(f"{where}: expected {{label, value}}")
    return pair[0], pair[1]


def _str(data: Mapping[str, Any], key: str, where: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise ValueError(f"{where}.{key}: expected a string")
    return value


def _opt_str(data: Mapping[str, Any], key: str, where: str) -> str | None:
    return None if data.get(key) is None else _str(data, key, where)


def _int(data: Mapping[str, Any], key: str, where: str) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{where}.{key}: expected an integer")
    return value


def _opt_int(data: Mapping[str, Any], key: str, where: str) -> int | None:
    return None if data.get(key) is None else _int(data, key, where)


def _strs(data: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = data.get(key)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{where}.{key}: expected a list of strings")
    return tuple(value)
