"""Exact output of the terminal renderer."""

from __future__ import annotations

import pytest

from opsroom.model.blocks import Code, Progress, Reply, Status, Table, Text
from opsroom.render.text import for_terminal, progress_bar, render_reply, reply_to_dict


def test_table_is_aligned_under_a_rule() -> None:
    reply = Reply((Table(("site", "status"), (("hq", "up"), ("store-0042", "degraded"))),))
    assert render_reply(reply) == (
        "site        status\n──────────  ────────\nhq          up\nstore-0042  degraded"
    )


def test_long_output_is_truncated_with_a_count_and_where_the_rest_is() -> None:
    lines = tuple(f"line {i}" for i in range(1, 101))
    text = render_reply(Reply((Code(lines, link="job 7"),)), max_lines=3)
    assert text == "… 97 more lines — full log: job 7\n  line 98\n  line 99\n  line 100"


def test_code_carries_lines_already_left_out() -> None:
    text = render_reply(Reply((Code(("a", "b"), more=10),)), max_lines=5)
    assert text.splitlines()[0] == "… 10 more lines"


def test_progress_bar() -> None:
    assert progress_bar(50, "volume 2/4") == "[████████████░░░░░░░░░░░░]  50% volume 2/4"
    assert progress_bar(250) == "[████████████████████████] 100%"
    assert progress_bar(None, "waiting") == "[························] waiting"


def test_status_and_text() -> None:
    reply = Reply(
        (Text("hello\nworld"), Status("done", "success"), Status("bad", "error"), Progress(10))
    )
    assert render_reply(reply).splitlines() == [
        "hello",
        "world",
        "✔ done",
        "✖ bad",
        "[██░░░░░░░░░░░░░░░░░░░░░░]  10%",
    ]


def test_reply_to_dict_keeps_structure() -> None:
    d = reply_to_dict(Reply((Table(("a",), (("1",),)),), job_id=4, kind="job"))
    assert d["job_id"] == 4
    assert d["kind"] == "job"
    assert d["blocks"] == [{"type": "table", "columns": ["a"], "rows": [["1"]]}]


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\x1b[1;31mred\x1b[0m", "red"),
        ("\x1b]0;title\x07text", "text"),
        ("\x1b]52;c;Y2xpcA==\x1b\\copied", "copied"),
        ("\x1b]8;;https://evil.example/\x1b\\link\x1b]8;;\x1b\\", "link"),
        ("\x1b]52;c;unterminated\nnext line", "\nnext line"),
        ("\x1bP1$tq\x1b\\dcs", "dcs"),
        ("\x1b(Bcharset \x1bcreset", "charset reset"),
        ("\x9b2J\x9d0;t\x9cc1", "c1"),
        ("keep\ttabs\nand lines", "keep\ttabs\nand lines"),
        ("over\rwrite\x08\x07\x00\x7f\x85", "over␍write␈␇␀␡\ufffd"),
        ("trailing \x1b", "trailing "),
    ],
)
def test_for_terminal_removes_sequences_and_shows_controls(raw: str, shown: str) -> None:
    assert for_terminal(raw) == shown


def test_inline_code_shows_without_backticks_in_a_terminal() -> None:
    reply = Reply(
        (
            Text("Say `!approve 7` or `!deny 7 <reason>`."),
            Status("needs approval — `!approve 7`", "warning"),
        )
    )
    assert render_reply(reply).splitlines() == [
        "Say !approve 7 or !deny 7 <reason>.",
        "! needs approval — !approve 7",
    ]
    # Script output is shown exactly as printed, backticks included.
    assert render_reply(Reply((Code(("echo `date`",)),))) == "  echo `date`"


def test_an_error_keeps_its_usage_on_a_line_of_its_own() -> None:
    shown = "--store: 'abc' is not a whole number\nusage: !store status <store>"
    assert render_reply(Reply((Status(shown, "error"),))).splitlines() == [
        "✖ --store: 'abc' is not a whole number",
        "usage: !store status <store>",
    ]


def test_one_line_left_out_is_one_line() -> None:
    assert render_reply(Reply((Code(("b",), more=1),))).splitlines()[0] == "… 1 more line"
