"""The IRC renderer: exact lines, each within the line limit."""

from __future__ import annotations

from typing import Any

import pytest

from opsroom.model.blocks import Actions, Choices, Code, Progress, Reply, Status, Table, Text
from opsroom.render.irc import IrcRenderer, split_line


def render(reply: Reply, **limits: Any) -> list[str]:
    """The lines `IrcRenderer` makes of `reply`."""
    return IrcRenderer(**limits).render(reply)


def test_status_is_bold_and_text_is_plain() -> None:
    reply = Reply((Text("Job 7 is running.\nSay `!job 7`."), Status("succeeded", "success")))
    assert render(reply) == ["Job 7 is running.", "Say `!job 7`.", "\x02✔ succeeded\x02"]


def test_long_output_keeps_its_tail_behind_a_job_hint() -> None:
    lines = tuple(f"line {i:03d}" for i in range(400))
    got = render(Reply((Code(lines),), job_id=7, kind="job"), max_lines=10)
    assert got == ["… 390 more lines — !job 7", *(f"line {i:03d}" for i in range(390, 400))]


def test_lines_already_left_out_are_counted() -> None:
    got = render(Reply((Code(("a", "b"), more=50, link="http://x/jobs/3"),)))
    assert got == ["… 50 more lines — http://x/jobs/3", "a", "b"]


def test_long_lines_split_between_words_within_the_byte_limit() -> None:
    text = "é" + " ".join(f"wörd{i}" for i in range(200))
    pieces = split_line(text, 100)
    assert all(len(p.encode()) <= 100 for p in pieces)
    assert " ".join(pieces) == text, "split only at spaces, nothing lost"
    assert split_line("x" * 250, 100) == ["x" * 100, "x" * 100, "x" * 50]


def test_split_lines_count_against_the_output_budget() -> None:
    long = "word " * 100  # 500 bytes → 2 pieces at 400
    got = render(Reply((Code(("first", long.strip(), "last")),)), max_lines=3)
    assert got[0] == "… 1 more line"
    assert got[-1] == "last"
    assert len(got) == 4


def test_control_characters_from_scripts_are_removed() -> None:
    reply = Reply((Code(("\x1b[31mred\x1b[0m \x02bold\x02 \x01CTCP\x01\ttab\x07", "")),))
    assert render(reply) == ["red bold CTCP    tab"]


def test_table_choices_and_actions() -> None:
    reply = Reply(
        (
            Table(("name", "state"), (("web1", "up"), ("db", "down"))),
            Choices("Which region?", ("emea", "apac"), "m1"),
            Actions((("Approve", "approve:3"),)),
            Progress(50.0, "copying"),
        )
    )
    assert render(reply) == [
        "name  state",
        "────  ─────",
        "web1  up",
        "db    down",
        "Which region?",
        "1) emea",
        "2) apac",
        "Answer with a number (or the value).",
        "[████████████░░░░░░░░░░░░]  50% copying",
    ]


def test_a_reply_never_floods_the_room() -> None:
    reply = Reply((Text("\n".join(f"row {i}" for i in range(100))),), job_id=4)
    got = render(reply, max_reply_lines=25)
    assert len(got) == 25
    assert got[-1] == "… 76 more lines — !job 4"


@pytest.mark.parametrize("width", [50, 120, 400])
def test_every_line_fits(width: int) -> None:
    reply = Reply((Status("ä" * 1000, "error"), Code(("ü " * 700,)), Text("ö" * 900)))
    lines = render(reply, max_bytes=width)
    assert len(lines) > 1, "split, not dropped"
    assert all(len(line.encode()) <= width for line in lines)


def test_a_long_job_reply_keeps_its_outcome_as_the_last_line() -> None:
    rows = tuple((f"host{i:02d}", "ok") for i in range(40))
    reply = Reply(
        (
            Code(("line 1", "line 2")),
            Table(("host", "state"), rows),
            Status("job 4 fleet check: succeeded in 2s", "success"),
        ),
        job_id=4,
        kind="job",
    )
    got = render(reply, max_reply_lines=25)
    assert len(got) == 25
    assert got[-2:] == ["… 21 more lines — !job 4", "\x02✔ job 4 fleet check: succeeded in 2s\x02"]
    assert got[:4] == ["line 1", "line 2", "host    state", "──────  ─────"]


def test_with_a_web_address_the_marker_links_the_job_page_not_a_command() -> None:
    link = "https://ops.example.org/jobs/7"
    lines = tuple(f"line {i:03d}" for i in range(40))
    got = render(Reply((Code(lines, link=link),), job_id=7, kind="job"), max_lines=10)
    assert got[0] == f"… 30 more lines — {link}"
    # Also when the whole reply is cut short: the page, never `!job 7`.
    rows = tuple((f"host{i:02d}", "ok") for i in range(40))
    reply = Reply(
        (Code(("a",), link=link), Table(("host", "state"), rows), Status("done", "success")),
        job_id=7,
        kind="job",
    )
    assert render(reply, max_reply_lines=25)[-2] == f"… 20 more lines — {link}"
