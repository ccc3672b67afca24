"""Mattermost rendering: exact Markdown, buttons as interactive messages, size limits."""

from __future__ import annotations

from typing import Any

from opsroom.model.blocks import Actions, Choices, Code, File, Progress, Reply, Status, Table, Text
from opsroom.render.mattermost import (
    MAX_LENGTH,
    Integration,
    MattermostPost,
    MattermostRenderer,
    attachment_text,
    render_block,
)

HOOK = Integration("https://ops.example.org/hooks/mattermost/actions", {"secret": "s3"})


def render(reply: Reply, **limits: Any) -> list[MattermostPost]:
    """The messages `MattermostRenderer` makes of `reply`."""
    return list(MattermostRenderer(**limits).render(reply))


def render_single(reply: Reply, **limits: Any) -> MattermostPost:
    """The one message `MattermostRenderer` makes of `reply` for an edit."""
    return MattermostRenderer(**limits).render_single(reply)


def test_blocks_render_exactly() -> None:
    assert render_block(Text("hello *world*")) == (["hello *world*"], [])
    assert render_block(Status("done", "success")) == ([":white_check_mark: done"], [])
    assert render_block(Status("careful", "warning")) == ([":warning: careful"], [])
    assert render_block(Progress(50, "copying")) == (
        ["`[████████████░░░░░░░░░░░░]  50%` copying"],
        [],
    )
    assert render_block(Table(("host", "up"), (("web01", "yes"), ("a|b", "")))) == (
        ["| host | up |\n| --- | --- |\n| web01 | yes |\n| a\\|b |   |"],
        [],
    )
    assert render_block(File("report.csv", 2048, job_id=7)) == (
        [":paperclip: **report.csv** — 2.0 KB (job 7)"],
        [],
    )


def test_approval_buttons_carry_their_values_url_and_secret() -> None:
    _, (attachment,) = render_block(
        Actions((("Approve", "approve:12"), ("Deny", "deny:12"))), integration=HOOK
    )
    actions = attachment["actions"]
    assert [(a["name"], a["style"], a["integration"]["context"]) for a in actions] == [
        ("Approve", "primary", {"secret": "s3", "value": "approve:12"}),
        ("Deny", "danger", {"secret": "s3", "value": "deny:12"}),
    ]
    assert {a["integration"]["url"] for a in actions} == {HOOK.url}
    assert all(a["id"].isalnum() for a in actions), "Mattermost action ids: letters, digits"
    assert attachment_text(attachment) == "[Approve] [Deny]"


def test_without_an_integration_there_are_no_buttons() -> None:
    assert render_block(Actions((("Approve", "approve:12"),))) == ([], [])
    texts, attachments = render_block(Choices("Which dc?", ("dc1", "dc2"), "m1"))
    assert attachments == []
    assert "1. dc1\n2. dc2" in texts[1]


def test_few_choices_are_buttons_many_a_select_too_many_a_list() -> None:
    _, (few,) = render_block(Choices("Which dc?", ("dc1", "dc2"), "m1"), integration=HOOK)
    assert [a["integration"]["context"]["value"] for a in few["actions"]] == [
        "menu:m1:0",
        "menu:m1:1",
    ]
    _, (many,) = render_block(
        Choices("Which job?", tuple(f"job{i}" for i in range(30)), "m2"), integration=HOOK
    )
    (select,) = many["actions"]
    assert select["type"] == "select"
    assert select["options"][29] == {"text": "job29", "value": "menu:m2:29"}
    assert select["integration"]["context"] == {"secret": "s3"}
    texts, none = render_block(
        Choices("Which?", tuple(f"o{i}" for i in range(150)), "m3"), integration=HOOK
    )
    assert none == []
    assert "150. o149" in texts[1]


def test_output_and_text_cannot_mention_anyone_or_close_the_code_block() -> None:
    (more_or_code,), _ = render_block(Code(("@channel deploy by @alice", "```oops```")))
    assert more_or_code.count("```") == 2, "output cannot close the code block"
    (text,), _ = render_block(Text("unknown command @all, mail ops@example.org"))
    assert "@all" not in text
    assert "@\u200ball" in text
    assert "ops@example.org" in text, "an address is not a mention"


def test_long_output_keeps_the_end_and_links_the_full_log() -> None:
    lines = tuple(f"line {i:05d} " + "x" * 60 for i in range(400))
    (more, code), _ = render_block(Code(lines, link="https://ops.example.org/jobs/9"), budget=4000)
    assert more.startswith("_… ")
    assert "more lines" in more
    assert "[full log](https://ops.example.org/jobs/9)" in more
    assert "line 00399" in code
    assert len(code) <= 4000
    (command_link, _), _ = render_block(Code(("a",), more=1, link="!job 9"))
    assert command_link == "_… 1 more line — full log: `!job 9`_"


def test_big_replies_split_within_the_limit_buttons_last() -> None:
    reply = Reply(
        (
            *(Text(f"paragraph {i} " + "y" * 200) for i in range(120)),
            Actions((("Approve", "approve:3"),)),
        )
    )
    posts = render(reply, max_length=4000, integration=HOOK)
    assert len(posts) > 1
    assert all(len(p.message) <= 4000 for p in posts)
    assert [bool(p.attachments) for p in posts] == [False] * (len(posts) - 1) + [True]
    shown = "\n".join(p.message for p in posts)
    assert "paragraph 0 " in shown
    assert "paragraph 119 " in shown
    assert render(Reply((Text("x" * 40_000),)))[0].message == "x" * MAX_LENGTH


def test_an_edit_is_one_post_ending_with_the_outcome_and_drops_old_buttons() -> None:
    reply = Reply((*(Text(f"p{i} " + "z" * 300) for i in range(40)), Status("finished", "success")))
    post = render_single(reply, max_length=4000)
    assert len(post.message) <= 4000
    assert post.message.endswith(":white_check_mark: finished")
    assert post.message.startswith("_… earlier lines left out_")
    assert post.payload()["props"] == {"attachments": []}, "an edit clears the buttons"
