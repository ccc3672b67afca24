"""Replies survive a JSON round trip exactly (kept replies are delivered after a restart)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

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
from opsroom.model.wire import dump_reply, load_block, load_reply

BLOCKS: list[Block] = [
    Text("deployed *api* to `prod` — ünïcode ✓"),
    Code(("line 1", "", "  indented"), more=120, link="/jobs/7/log"),
    Code(("only",)),
    Table(("store", "state"), (("42", "ok"), ("13", ""))),
    Table((), ()),
    Progress(42.5, "copying"),
    Progress(None),
    Status("job 7 succeeded", "success"),
    Status("hello"),
    File("report.csv", 2048, job_id=7, content_type="text/csv"),
    File("blob", 0),
    Choices("Which env?", ("dev", "test", "prod"), "m-3f2a"),
    Actions((("Approve", "approve:12"), ("Deny", "deny:12"))),
]


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: type(b).__name__)
def test_every_block_round_trips_through_json_text(block: Block) -> None:
    reply = Reply((block,), job_id=7, kind="job")
    text = json.dumps(dump_reply(reply))
    assert load_reply(json.loads(text)) == reply


def test_a_reply_with_every_block_round_trips() -> None:
    reply = Reply(tuple(BLOCKS))
    back = load_reply(json.loads(json.dumps(dump_reply(reply))))
    assert back == reply
    assert (back.job_id, back.kind) == (None, "reply")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"type": "movie"}, "block.type: unknown block type 'movie'"),
        ({"type": "text"}, "block.text: expected a string"),
        ({"type": "code", "lines": ["a", 1], "more": 0}, "block.lines: expected a list of strings"),
        ({"type": "progress", "percent": "50", "message": ""}, "block.percent: expected a number"),
        ({"type": "file", "name": "x", "size": True, "content_type": "a/b"}, "block.size"),
        (
            {"type": "actions", "buttons": [["only a label"]]},
            "block.buttons[0]: expected {label, value}",
        ),
        ({"type": "actions", "buttons": [{"label": "Go"}]}, "block.buttons[0].value: expected a"),
        ({"type": "choices", "prompt": "?", "options": []}, "block.menu: expected a string"),
        ("text", "block: expected an object"),
    ],
)
def test_damaged_data_is_refused_with_the_field_named(data: Any, message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        load_block(data)


def test_a_reply_without_blocks_is_refused() -> None:
    with pytest.raises(ValueError, match=re.escape("reply.blocks: expected a list")):
        load_reply({"kind": "reply", "job_id": None})


def test_replies_kept_by_the_earlier_version_still_load() -> None:
    # Before one serialiser served every path, kept replies wrote pairs and `menu_id`.
    kept = {
        "kind": "reply",
        "job_id": 12,
        "blocks": [
            {"type": "choices", "prompt": "Which env?", "options": ["dev"], "menu_id": "m-1"},
            {"type": "actions", "buttons": [["Approve", "approve:12"], ["Deny", "deny:12"]]},
        ],
    }
    assert load_reply(kept) == Reply(
        (
            Choices("Which env?", ("dev",), "m-1"),
            Actions((("Approve", "approve:12"), ("Deny", "deny:12"))),
        ),
        job_id=12,
    )


def test_the_web_and_cli_json_is_the_one_serialised_form_plus_its_text() -> None:
    from opsroom.render.text import render_reply, reply_to_dict

    reply = Reply(tuple(BLOCKS), job_id=7, kind="job")
    shown = json.loads(json.dumps(reply_to_dict(reply)))
    assert shown == {**dump_reply(reply), "text": render_reply(reply)}
    # What the web chat and the API publish is read back whole: nothing is lost on the way.
    assert load_reply(shown) == reply
    assert shown["blocks"][-2:] == [
        {"type": "choices", "prompt": "Which env?", "options": ["dev", "test", "prod"],
         "menu": "m-3f2a"},
        {"type": "actions", "buttons": [{"label": "Approve", "value": "approve:12"},
                                        {"label": "Deny", "value": "deny:12"}]},
    ]  # fmt: skip
