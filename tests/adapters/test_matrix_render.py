"""How replies look in a Matrix client: exact `m.room.message` contents."""

from __future__ import annotations

import json
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
from opsroom.render.matrix import MAX_EVENT_BYTES, MatrixRenderer


def render_reply(reply: Reply, **limits: Any) -> list[dict[str, Any]]:
    """The `m.room.message` contents `MatrixRenderer` makes of `reply`."""
    return MatrixRenderer(**limits).render(reply)


@pytest.mark.parametrize(
    ("block", "body", "html"),
    [
        (
            Text("run `!job 3` <b>now</b>\nplease"),
            "run `!job 3` <b>now</b>\nplease",
            "<p>run <code>!job 3</code> &lt;b&gt;now&lt;/b&gt;<br/>please</p>",
        ),
        (
            Table(("host", "state"), (("a<1>", "ok"), ("bb", "down"))),
            "host  state\n────  ─────\na<1>  ok\nbb    down",
            "<table><thead><tr><th>host</th><th>state</th></tr></thead><tbody>"
            "<tr><td>a&lt;1&gt;</td><td>ok</td></tr><tr><td>bb</td><td>down</td></tr>"
            "</tbody></table>",
        ),
        (
            Code(("x & y", "</code><script>"), more=5, link="https://c/jobs/3"),
            "… 5 more lines — full log: https://c/jobs/3\nx & y\n</code><script>",
            '<p><em>… 5 more lines — full log: <a href="https://c/jobs/3">https://c/jobs/3</a>'
            "</em></p><pre><code>x &amp; y\n&lt;/code&gt;&lt;script&gt;</code></pre>",
        ),
        (
            Code(("tick 9",), more=8, link="!job 1"),
            "… 8 more lines — full log: !job 1\ntick 9",
            "<p><em>… 8 more lines — full log: !job 1</em></p><pre><code>tick 9</code></pre>",
        ),
        (
            Code(("a",), more=1, link='javascript:alert("x")'),
            '… 1 more line — full log: javascript:alert("x")\na',
            "<p><em>… 1 more line — full log: javascript:alert(&quot;x&quot;)</em></p>"
            "<pre><code>a</code></pre>",
        ),
        (
            Progress(50, "copy <vol>"),
            "[████████████░░░░░░░░░░░░]  50% copy <vol>",
            "<p><code>[████████████░░░░░░░░░░░░]  50% copy &lt;vol&gt;</code></p>",
        ),
        (
            Status("job 3: failed <exit 1>", "error"),
            "✖ job 3: failed <exit 1>",
            "<p>✖ <strong>job 3: failed &lt;exit 1&gt;</strong></p>",
        ),
        (
            Status("--store: 'abc' is not a whole number\nusage: !store status <store>", "error"),
            "✖ --store: 'abc' is not a whole number\nusage: !store status <store>",
            "<p>✖ <strong>--store: &#x27;abc&#x27; is not a whole number<br/>"
            "usage: !store status &lt;store&gt;</strong></p>",
        ),
        (
            File("r<1>.csv", 2048, 3),
            "📎 r<1>.csv — 2.0 KB (job 3)",
            "<p>📎 <strong>r&lt;1&gt;.csv</strong> — 2.0 KB (job 3)</p>",
        ),
        (Actions((("Approve", "approve:3"),)), "", ""),
    ],
)
def test_blocks(block: Block, body: str, html: str) -> None:
    assert render_reply(Reply((block,))) == [
        {
            "msgtype": "m.notice",
            "body": body,
            "format": "org.matrix.custom.html",
            "formatted_body": html,
        }
    ]


def test_a_menu_is_a_numbered_list_people_answer() -> None:
    reply = Reply((Choices("Which env?", ("dev", "<prod>"), "m1"),))
    assert render_reply(reply) == [
        {
            "msgtype": "m.text",
            "body": "Which env?\n1) dev\n2) <prod>\nAnswer with a number (or the value).",
            "format": "org.matrix.custom.html",
            "formatted_body": "<p>Which env?</p><ol><li>dev</li><li>&lt;prod&gt;</li></ol>"
            "<p>Answer with a number (or the value).</p>",
        }
    ]


def test_long_output_keeps_its_end_and_says_how_much_is_left_out() -> None:
    lines = tuple(f"line {i:05d} " + "x" * 60 for i in range(400))
    reply = Reply((Code(lines, link="!job 4"), Status("job 4: succeeded", "success")))
    (message,) = render_reply(reply, max_length=4000)
    body = message["body"]
    assert len(body) <= 4000
    assert body.endswith("line 00399 " + "x" * 60 + "\n✔ job 4: succeeded")
    kept = body.count("line 0")
    assert body.startswith(f"… {400 - kept} more lines — full log: !job 4\n")
    assert 4000 - len(body) < 80, "as much output as fits is kept"


def test_text_too_long_for_one_message_is_split() -> None:
    paragraph = "\n".join(f"paragraph line {i}" for i in range(2000))
    messages = render_reply(Reply((Text(paragraph),)), max_length=5000)
    assert len(messages) > 1
    assert all(len(m["body"]) <= 5000 for m in messages)
    assert "\n".join(m["body"] for m in messages) == paragraph


def test_every_event_stays_under_the_homeservers_byte_limit() -> None:
    wide = tuple("<&>\"'" * 2000 for _ in range(40))  # escaping grows this six-fold
    messages = render_reply(Reply((Text("\n".join(wide)), Code(wide))))
    assert len(messages) > 1, "split, not dropped"
    for message in messages:
        assert len(json.dumps(message).encode()) < 65_536
        assert len(message["body"].encode()) + len(message["formatted_body"].encode()) <= (
            MAX_EVENT_BYTES
        )
