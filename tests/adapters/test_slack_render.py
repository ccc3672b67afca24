"""Block Kit rendering: exact output, escaping, and Slack's size limits."""

from __future__ import annotations

from typing import Any

from opsroom.model.blocks import Actions, Choices, Code, File, Progress, Reply, Status, Table, Text
from opsroom.render.slack import (
    BLOCK_LIMIT,
    SECTION_LIMIT,
    SlackMessage,
    SlackRenderer,
    block_text,
    render_block,
)


def render(reply: Reply, **limits: Any) -> list[SlackMessage]:
    """The messages `SlackRenderer` makes of `reply`."""
    return list(SlackRenderer(**limits).render(reply))


def render_single(reply: Reply, **limits: Any) -> SlackMessage:
    """The one message `SlackRenderer` makes of `reply` for an edit."""
    return SlackRenderer(**limits).render_single(reply)


def test_blocks_render_exactly() -> None:
    assert render_block(Text("hello *world*")) == [
        {"type": "section", "text": {"type": "mrkdwn", "text": "hello *world*"}}
    ]
    assert render_block(Status("done", "success")) == [
        {"type": "section", "text": {"type": "mrkdwn", "text": ":white_check_mark: done"}}
    ]
    assert render_block(Progress(50, "copying")) == [
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": "`[████████████░░░░░░░░░░░░]  50%` copying"},
        }
    ]
    assert render_block(Table(("host", "up"), (("web01", "yes"),))) == [
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": "```\nhost   up\n─────  ───\nweb01  yes\n```"},
        }
    ]
    assert render_block(File("report.csv", 2048, job_id=7)) == [
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": ":paperclip: *report.csv* — 2.0 KB (job 7)"},
        }
    ]


def test_approval_buttons_carry_their_values() -> None:
    (actions,) = render_block(Actions((("Approve", "approve:12"), ("Deny", "deny:12"))))
    assert actions["type"] == "actions"
    assert [(e["text"]["text"], e["value"], e.get("style")) for e in actions["elements"]] == [
        ("Approve", "approve:12", "primary"),
        ("Deny", "deny:12", "danger"),
    ]
    assert len({e["action_id"] for e in actions["elements"]}) == 2


def test_few_choices_are_buttons_many_a_select() -> None:
    few = render_block(Choices("Which dc?", ("dc1", "dc2"), "m1"))
    assert [e["value"] for e in few[1]["elements"]] == ["menu:m1:0", "menu:m1:1"]
    many = render_block(Choices("Which job?", tuple(f"job{i}" for i in range(30)), "m2"))
    (select,) = many[1]["elements"]
    assert select["type"] == "static_select"
    assert select["options"][29]["value"] == "menu:m2:29"


def test_output_cannot_mention_anyone() -> None:
    (section,) = render_block(Code(("<!channel> deploy by <@U024BE7LH> & co", "```oops```")))
    text = section["text"]["text"]
    assert "<!channel>" not in text
    assert "<@U024BE7LH>" not in text
    assert "&lt;!channel&gt;" in text
    assert "&amp; co" in text
    assert text.count("```") == 2, "output cannot close the code block"


def test_long_output_keeps_the_end_and_says_what_was_left_out() -> None:
    lines = tuple(f"line {i:05d} " + "x" * 60 for i in range(400))
    blocks = render_block(Code(lines, link="https://ops.example.com/jobs/9"))
    assert blocks[0]["type"] == "context"
    assert "more lines" in blocks[0]["elements"][0]["text"]
    assert "<https://ops.example.com/jobs/9|full log>" in blocks[0]["elements"][0]["text"]
    assert "line 00399" in blocks[1]["text"]["text"]
    assert len(blocks[1]["text"]["text"]) <= SECTION_LIMIT


def test_big_replies_split_within_slack_limits() -> None:
    reply = Reply(tuple(Text(f"paragraph {i} " + "y" * 200) for i in range(120)))
    messages = render(reply, max_length=4000)
    assert len(messages) > 1
    for message in messages:
        assert len(message.blocks) <= BLOCK_LIMIT
        assert len(message.text) <= 4000
        assert all(len(block_text(b)) <= SECTION_LIMIT for b in message.blocks)
    shown = "\n".join(m.text for m in messages)
    assert "paragraph 0 " in shown
    assert "paragraph 119 " in shown


def test_an_edit_is_one_message_ending_with_the_outcome() -> None:
    reply = Reply((*(Text(f"p{i} " + "z" * 300) for i in range(40)), Status("finished", "success")))
    message = render_single(reply, max_length=4000)
    assert len(message.text) <= 4000
    assert message.text.endswith(":white_check_mark: finished")
    assert "earlier lines left out" in message.text


def _capped(link: str) -> Reply:
    """A capped job's final reply as the collector makes it: the outcome last."""
    return Reply(
        (
            Code(("line 198", "line 199"), more=198, link=link),
            Status("the stored log of job 7 stopped at the 1,024-byte cap", "warning"),
            Status("job 7 cap flood: succeeded in 1s", "success"),
        ),
        job_id=7,
        kind="job",
    )


def _texts(reply: Reply) -> list[str]:
    return [block_text(b) for b in render_single(reply).blocks]


def test_a_capped_job_links_its_full_log_and_ends_with_its_outcome() -> None:
    assert _texts(_capped("https://ops.example.org/jobs/7")) == [
        "… 198 more lines — <https://ops.example.org/jobs/7|full log>",
        "```\nline 198\nline 199\n```",
        ":warning: the stored log of job 7 stopped at the 1,024-byte cap",
        ":white_check_mark: job 7 cap flood: succeeded in 1s",
    ]
    # Without a console address the link is the command that shows the job, as text:
    # inside `<…>` Slack would read `!job 7` as a broken special mention.
    assert _texts(_capped("!job 7"))[0] == "… 198 more lines — full log: `!job 7`"


def test_one_line_left_out_is_one_line_and_still_a_link() -> None:
    reply = Reply((Code(("last",), more=1, link="https://ops.example.org/jobs/3"),))
    assert block_text(render_single(reply).blocks[0]) == (
        "… 1 more line — <https://ops.example.org/jobs/3|full log>"
    )
