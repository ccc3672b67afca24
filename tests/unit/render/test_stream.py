"""A job's live message: what it shows and when it may be edited, decided without a clock."""

from __future__ import annotations

import pytest

from opsroom.model.blocks import Block, Code, Progress, Reply, Status, Table
from opsroom.render.stream import LIVE_TAIL, LiveView, edit_delay, is_final, progress_due


def job(*blocks: Block, kind: str = "job") -> Reply:
    """One of job 7's replies."""
    return Reply(tuple(blocks), job_id=7, kind=kind)


def test_an_edit_waits_for_the_platforms_edit_rate() -> None:
    # One edit a second: 0.25 s after the last one, the next waits 0.75 s.
    assert edit_delay(now=10.25, last_edit=10.0, edits_per_second=1.0, force=False) == 0.75
    assert edit_delay(now=11.0, last_edit=10.0, edits_per_second=1.0, force=False) == 0.0
    assert edit_delay(now=30.0, last_edit=10.0, edits_per_second=1.0, force=False) == 0.0
    # Four a second: a quarter second apart.
    assert edit_delay(now=10.1, last_edit=10.0, edits_per_second=4.0, force=False) == (
        pytest.approx(0.15)
    )


def test_the_outcome_is_never_held_back() -> None:
    assert edit_delay(now=10.0, last_edit=10.0, edits_per_second=1.0, force=True) == 0.0


def test_a_platform_that_claims_no_edit_rate_still_gets_a_finite_wait() -> None:
    assert edit_delay(now=0.0, last_edit=0.0, edits_per_second=0.0, force=False) == 100.0


def test_without_edits_progress_is_thinned_out() -> None:
    assert progress_due(now=5.0, last_shown=None, every=15.0), "the first one is shown"
    assert not progress_due(now=19.9, last_shown=5.0, every=15.0)
    assert progress_due(now=20.0, last_shown=5.0, every=15.0)


def test_the_view_keeps_status_progress_and_the_last_lines() -> None:
    live = LiveView()
    assert not live.absorb(job(Status("job 7 running", "info")))
    assert not live.absorb(job(Progress(10, "copying"), kind="progress"))
    lines = tuple(f"line {i}" for i in range(LIVE_TAIL + 5))
    assert not live.absorb(job(Code(lines), kind="output"))
    assert not live.absorb(job(Progress(60, "copying"), kind="progress"))
    assert live.view(7) == Reply(
        (
            Status("job 7 running", "info"),
            Progress(60, "copying"),
            Code(lines[5:], more=5),
        ),
        job_id=7,
        kind="job",
    )


def test_the_outcome_replaces_the_view_and_counts_every_line_left_out() -> None:
    live = LiveView()
    live.absorb(job(Code(tuple(f"l{i}" for i in range(LIVE_TAIL)), more=3, link="/jobs/7")))
    final = job(Code(("last",)), Table(("a",), (("1",),)), Status("succeeded", "success"))
    assert is_final(final)
    assert live.absorb(final)
    shown = live.view(7)
    code = shown.blocks[0]
    assert isinstance(code, Code)
    assert code.lines[-1] == "last"
    # 3 left out before, LIVE_TAIL shown live, 1 more at the end: all but the tail counted.
    assert code.more == 4
    assert code.link == "/jobs/7"
    assert shown.blocks[1:] == (Table(("a",), (("1",),)), Status("succeeded", "success"))


@pytest.mark.parametrize(
    ("reply", "final"),
    [
        (job(Status("done", "success")), True),
        (job(Status("failed", "error")), True),
        (job(Status("still going", "info")), False),
        (job(Status("done", "success"), kind="progress"), False),
        (job(), False),
    ],
)
def test_only_a_success_or_error_status_ends_a_job(reply: Reply, final: bool) -> None:
    assert is_final(reply) is final
