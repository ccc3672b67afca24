"""Teams rendering: exact Markdown and Adaptive Cards, escaping, and the size limit."""

from __future__ import annotations

from typing import Any

from opsroom.model.blocks import Actions, Choices, Code, File, Progress, Reply, Status, Table, Text
from opsroom.render.teams import (
    CARD_TYPE,
    TeamsMessage,
    TeamsRenderer,
    block_markdown,
    card_text,
)


def render(reply: Reply, **limits: Any) -> list[TeamsMessage]:
    """The messages `TeamsRenderer` makes of `reply`."""
    return list(TeamsRenderer(**limits).render(reply))


def render_single(reply: Reply, **limits: Any) -> TeamsMessage:
    """The one message `TeamsRenderer` makes of `reply` for an edit."""
    return TeamsRenderer(**limits).render_single(reply)


def test_blocks_render_exactly() -> None:
    assert block_markdown(Text("hello *world*")) == "hello *world*"
    assert block_markdown(Status("done", "success")) == "✅ done"
    assert block_markdown(Status("failed", "error")) == "❌ failed"
    assert block_markdown(Progress(50, "copying")) == "`[████████████░░░░░░░░░░░░]  50%` copying"
    assert block_markdown(Table(("host", "up"), (("web01", "yes"),))) == (
        "```\nhost   up\n─────  ───\nweb01  yes\n```"
    )
    assert (
        block_markdown(File("report.csv", 2048, job_id=7)) == "📎 **report.csv** — 2.0 KB (job 7)"
    )


def test_text_from_scripts_cannot_inject_markup() -> None:
    assert block_markdown(Text("<at>Everyone</at> & <b>x</b>")) == (
        "&lt;at&gt;Everyone&lt;/at&gt; &amp; &lt;b&gt;x&lt;/b&gt;"
    )
    fenced = block_markdown(Code(("```", "after")))
    assert fenced.count("```") == 2, "output cannot close the code block early"


def test_plain_reply_is_a_markdown_message() -> None:
    (message,) = render(Reply((Text("hi"), Status("ok", "success"))))
    assert message.payload() == {"type": "message", "text": "hi\n\n✅ ok", "textFormat": "markdown"}


def test_approval_buttons_are_an_adaptive_card_with_submit_data() -> None:
    reply = Reply(
        (Text("approve job 12?"), Actions((("Approve", "approve:12"), ("Deny", "deny:12"))))
    )
    (message,) = render(reply)
    payload = message.payload()
    (attachment,) = payload["attachments"]
    assert attachment["contentType"] == CARD_TYPE
    content = attachment["content"]
    assert content["type"] == "AdaptiveCard"
    assert content["body"] == [{"type": "TextBlock", "text": "approve job 12?", "wrap": True}]
    assert [(a["type"], a["title"], a["data"], a["style"]) for a in content["actions"]] == [
        ("Action.Submit", "Approve", {"opsroom": "approve:12"}, "positive"),
        ("Action.Submit", "Deny", {"opsroom": "deny:12"}, "destructive"),
    ]
    assert card_text(content) == "approve job 12?\n[Approve] [Deny]"


def test_few_choices_are_buttons_many_a_choice_set_too_many_a_list() -> None:
    (few,) = render(Reply((Choices("Which dc?", ("dc1", "dc2"), "m1"),)))
    assert few.card is not None
    assert [a["data"]["opsroom"] for a in few.card["actions"]] == ["menu:m1:0", "menu:m1:1"]
    (many,) = render(Reply((Choices("Which job?", tuple(f"job{i}" for i in range(30)), "m2"),)))
    assert many.card is not None
    choice_set = many.card["body"][1]
    assert (choice_set["type"], choice_set["id"]) == ("Input.ChoiceSet", "opsroom")
    assert choice_set["choices"][29] == {"title": "job29", "value": "menu:m2:29"}
    (listed,) = render(Reply((Choices("Which?", tuple(f"o{i}" for i in range(150)), "m3"),)))
    assert listed.card is None
    assert "150. o149" in listed.text


def test_long_output_keeps_its_end_with_n_more_lines_and_the_link() -> None:
    lines = tuple(f"line {i:05d} " + "x" * 60 for i in range(400))
    link = "https://ops.example.org/jobs/12"
    messages = render(
        Reply((Code(lines, more=100, link=link), Status("done", "success"))), max_length=4000
    )
    (message,) = messages
    assert len(message.text) <= 4000
    assert "line 00399" in message.text
    assert "line 00000" not in message.text
    shown = sum(1 for line in message.text.splitlines() if line.startswith("line "))
    assert f"… {500 - shown} more lines — [full log]({link})" in message.text
    assert message.text.endswith("✅ done")


def test_long_text_is_split_and_an_update_is_one_message() -> None:
    text = "\n".join(f"paragraph {i} " + "y" * 80 for i in range(200))
    messages = render(Reply((Text(text),)), max_length=3000)
    assert len(messages) > 1
    assert all(len(m.text) <= 3000 for m in messages)
    assert "paragraph 199" in messages[-1].text
    single = render_single(Reply((Text(text),)), max_length=3000)
    assert len(single.text) <= 3000
    assert single.text.startswith("… earlier lines left out")
    assert "paragraph 199" in single.text
