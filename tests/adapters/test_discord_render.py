"""Discord rendering: exact output, code fences, components and the 2,000-character limit."""

from __future__ import annotations

from typing import Any

from opsroom.model.blocks import Actions, Choices, Code, File, Progress, Reply, Status, Table, Text
from opsroom.render.discord import (
    MAX_LENGTH,
    DiscordMessage,
    DiscordRenderer,
    render_block,
    visible_text,
)


def render(reply: Reply, **limits: Any) -> list[DiscordMessage]:
    """The messages `DiscordRenderer` makes of `reply`."""
    return list(DiscordRenderer(**limits).render(reply))


def render_single(reply: Reply, **limits: Any) -> DiscordMessage:
    """The one message `DiscordRenderer` makes of `reply` for an edit."""
    return DiscordRenderer(**limits).render_single(reply)


def test_blocks_render_exactly() -> None:
    assert render_block(Text("hello *world*")) == (["hello *world*"], [])
    assert render_block(Status("done", "success")) == (["✅ done"], [])
    assert render_block(Status("failed", "error")) == (["❌ failed"], [])
    assert render_block(Progress(50, "copying")) == (
        ["`[████████████░░░░░░░░░░░░]  50%` copying"],
        [],
    )
    assert render_block(Table(("host", "up"), (("web01", "yes"),))) == (
        ["```\nhost   up\n─────  ───\nweb01  yes\n```"],
        [],
    )
    assert render_block(File("report.csv", 2048, job_id=7)) == (
        ["📎 **report.csv** — 2.0 KB (job 7)"],
        [],
    )


def test_every_message_pings_nobody() -> None:
    (message,) = render(Reply((Code(("@everyone deploy by <@123>",)),)))
    assert message.payload()["allowed_mentions"] == {"parse": []}


def test_approval_buttons_carry_their_values_in_custom_id() -> None:
    _, rows = render_block(Actions((("Approve", "approve:12"), ("Deny", "deny:12"))))
    assert rows == [
        {
            "type": 1,
            "components": [
                {"type": 2, "style": 1, "label": "Approve", "custom_id": "approve:12"},
                {"type": 2, "style": 4, "label": "Deny", "custom_id": "deny:12"},
            ],
        }
    ]


def test_few_choices_are_buttons_more_a_select_too_many_a_list() -> None:
    _, few = render_block(Choices("Which dc?", ("dc1", "dc2"), "m1"))
    assert [b["custom_id"] for b in few[0]["components"]] == ["menu:m1:0", "menu:m1:1"]
    _, some = render_block(Choices("Which job?", tuple(f"job{i}" for i in range(25)), "m2"))
    (select,) = some[0]["components"]
    assert select["type"] == 3
    assert select["custom_id"] == "menu:m2"
    assert select["options"][24] == {"label": "job24", "value": "menu:m2:24"}
    texts, none = render_block(Choices("Which?", tuple(f"o{i}" for i in range(26)), "m3"))
    assert none == []
    assert texts[-2:] == ["26) o25", "Answer with a number (or the value)."]


def test_output_cannot_close_the_code_block() -> None:
    (text,), _ = render_block(Code(("before", "```", "**not bold**")))
    assert text.count("```") == 2


def test_long_output_keeps_the_end_and_links_the_full_log() -> None:
    lines = tuple(f"line {i:05d} " + "x" * 60 for i in range(400))
    (message,) = render(Reply((Code(lines, link="https://ops.example.com/jobs/9"),)))
    assert len(message.content) <= MAX_LENGTH
    first = message.content.splitlines()[0]
    assert first.startswith("… ")
    assert "[full log](<https://ops.example.com/jobs/9>)" in first
    shown = message.content.count("line 0")
    assert first == f"… {400 - shown} more lines — [full log](<https://ops.example.com/jobs/9>)"
    assert "line 00399" in message.content


def test_a_long_reply_is_split_and_the_buttons_come_last() -> None:
    texts = tuple(Text("paragraph " + "y" * 900) for _ in range(5))
    messages = render(Reply((*texts, Actions((("Approve", "approve:1"),)))))
    assert len(messages) > 1
    assert all(len(m.content) <= MAX_LENGTH for m in messages)
    assert all(not m.components for m in messages[:-1])
    assert messages[-1].components


def test_an_edit_is_one_message_keeping_the_end() -> None:
    texts = tuple(Text(f"part {i} " + "z" * 900) for i in range(5))
    message = render_single(Reply((*texts, Status("done", "success"))))
    assert len(message.content) <= MAX_LENGTH
    assert message.content.startswith("… earlier lines left out")
    assert message.content.endswith("✅ done")


def test_visible_text_shows_labels() -> None:
    message = DiscordMessage(
        "Approve?", tuple(render_block(Actions((("Approve", "approve:3"),)))[1])
    )
    assert visible_text(message) == "Approve?\n[Approve]"
