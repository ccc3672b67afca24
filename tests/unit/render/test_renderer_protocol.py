"""Every renderer is one `Renderer`: built with its limits, `render(reply)` gives the messages."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from opsroom.model.blocks import Code, Reply, Status
from opsroom.render.base import EditRenderer, Renderer
from opsroom.render.discord import DiscordRenderer
from opsroom.render.irc import IrcRenderer
from opsroom.render.matrix import MatrixRenderer
from opsroom.render.mattermost import MattermostPost, MattermostRenderer
from opsroom.render.slack import SlackMessage, SlackRenderer
from opsroom.render.teams import TeamsRenderer
from opsroom.render.text import TextRenderer

# mypy checks each assignment: a renderer whose signature drifts fails the type check.
SLACK: EditRenderer[SlackMessage] = SlackRenderer(max_length=3000)
MATTERMOST: EditRenderer[MattermostPost] = MattermostRenderer(max_length=3000)
IRC: Renderer[str] = IrcRenderer(max_bytes=200, max_lines=10)
TEXT: Renderer[str] = TextRenderer(max_lines=10)

# Each renderer with what one of its messages shows a person, to measure it.
CASES: list[tuple[Renderer[Any], Callable[[Any], str], int]] = [
    (SLACK, lambda m: m.text, 3000),
    (TeamsRenderer(max_length=3000), lambda m: m.text, 3000),
    (DiscordRenderer(max_length=1900), lambda m: m.content, 1900),
    (MATTERMOST, lambda m: m.message, 3000),
    (MatrixRenderer(max_length=3000), lambda m: m["body"], 3000),
    (IRC, lambda m: m, 200),
    (TEXT, lambda m: m, 10_000),
]
LONG = Reply(
    (Code(tuple(f"line {i:04d} " + "x" * 50 for i in range(500))), Status("done", "success")),
    job_id=3,
    kind="job",
)


@pytest.mark.parametrize(("renderer", "shown", "limit"), CASES, ids=lambda c: type(c).__name__)
def test_every_renderer_fits_its_limit_and_keeps_the_end(
    renderer: Renderer[Any], shown: Callable[[Any], str], limit: int
) -> None:
    assert isinstance(renderer, Renderer)
    messages = renderer.render(LONG)
    assert messages, "a reply is never nothing"
    texts = [shown(m) for m in messages]
    assert all(len(t.encode() if renderer is IRC else t) <= limit for t in texts)
    whole = "\n".join(texts)
    assert "line 0499" in whole, "the last line of output is shown"
    assert "done" in texts[-1], "the outcome comes last"


@pytest.mark.parametrize(
    "renderer",
    [SLACK, TeamsRenderer(max_length=3000), DiscordRenderer(max_length=1900), MATTERMOST],
    ids=lambda r: type(r).__name__,
)
def test_platforms_that_edit_render_a_reply_as_one_message(renderer: EditRenderer[Any]) -> None:
    assert isinstance(renderer, EditRenderer)
    many = Reply(tuple(Status(f"paragraph {i} " + "y" * 200) for i in range(60)))
    assert len(renderer.render(many)) > 1
    single = renderer.render_single(many)
    assert "paragraph 59" in str(single), "the end is kept"
    assert "earlier lines left out" in str(single)


def test_renderers_without_edits_are_not_edit_renderers() -> None:
    assert not isinstance(IRC, EditRenderer)
    assert not isinstance(MatrixRenderer(), EditRenderer)
    assert not isinstance(TEXT, EditRenderer)
