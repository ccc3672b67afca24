"""Attachment requests and the safe re-read of an attached file (SPEC §5.3)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from opsroom.runner.attachments import AttachmentRefused, read_attachment, resolve_attachment
from opsroom.runner.events import AttachmentRequest, MalformedEvent, parse_event


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"type":"attachment","path":"a.csv"}', AttachmentRequest("a.csv")),
        (
            '{"type":"attachment","path":"a.csv","name":"A","content_type":"text/csv"}',
            AttachmentRequest("a.csv", "A", "text/csv"),
        ),
        (
            '{"type":"attachment","path":"a.csv","name":"  ","content_type":3}',
            AttachmentRequest("a.csv"),
        ),
    ],
)
def test_attachment_events_parse(line: str, expected: AttachmentRequest) -> None:
    assert parse_event(line) == expected


@pytest.mark.parametrize(
    "line",
    [
        '{"type":"attachment"}',
        '{"type":"attachment","path":""}',
        '{"type":"attachment","path":5}',
        '{"type":"attachment","path":"a\\u0000b"}',
    ],
)
def test_attachment_needs_a_path(line: str) -> None:
    with pytest.raises(MalformedEvent, match="attachment needs a path"):
        parse_event(line)


@pytest.mark.parametrize(
    ("name", "given_type", "shown", "content_type"),
    [
        (None, None, "report.csv", "text/csv"),
        (
            "C:\\temp\\May.xlsx",
            None,
            "May.xlsx",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        ),
        ("..", "text/plain; charset=utf-8", "report.csv", "text/plain; charset=utf-8"),
        ("x.bin", "not a type", "x.bin", "application/octet-stream"),
    ],
)
def test_display_name_and_content_type(
    tmp_path: Path, name: str | None, given_type: str | None, shown: str, content_type: str
) -> None:
    (tmp_path / "report.csv").write_text("a\n")
    event = resolve_attachment("report.csv", root=str(tmp_path), name=name, content_type=given_type)
    assert (event.name, event.content_type, event.size) == (shown, content_type, 2)


def test_the_folder_itself_is_refused(tmp_path: Path) -> None:
    with pytest.raises(AttachmentRefused, match="outside"):
        resolve_attachment(".", root=str(tmp_path))


def test_reading_back_gives_the_bytes(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "r.txt").write_bytes(b"hello")
    event = resolve_attachment("out/r.txt", root=str(tmp_path))
    assert read_attachment(event, root=str(tmp_path)) == b"hello"
    assert read_attachment(event) == b"hello"
    with pytest.raises(AttachmentRefused, match="outside"):
        read_attachment(event, root=str(tmp_path / "out" / "elsewhere"))


@pytest.mark.parametrize("swap", ["file", "folder"])
def test_a_file_swapped_for_a_symlink_after_the_check_is_refused(tmp_path: Path, swap: str) -> None:
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "r.txt").write_bytes(b"do not leak")
    work = tmp_path / "work"
    (work / "out").mkdir(parents=True)
    (work / "out" / "r.txt").write_bytes(b"fine")
    event = resolve_attachment("out/r.txt", root=str(work))
    if swap == "file":
        os.unlink(work / "out" / "r.txt")
        os.symlink(secret / "r.txt", work / "out" / "r.txt")
    else:
        os.rename(work / "out", work / "old")
        os.symlink(secret, work / "out")
    with pytest.raises(AttachmentRefused, match="changed after it was offered"):
        read_attachment(event, root=str(work))
    with pytest.raises(AttachmentRefused, match="changed after it was offered"):
        read_attachment(event)


def test_a_fifo_swapped_in_is_refused_without_blocking(tmp_path: Path) -> None:
    (tmp_path / "r.txt").write_bytes(b"fine")
    event = resolve_attachment("r.txt", root=str(tmp_path))
    os.unlink(tmp_path / "r.txt")
    os.mkfifo(tmp_path / "r.txt")
    with pytest.raises(AttachmentRefused, match="changed after it was offered"):
        read_attachment(event)


def test_a_file_that_grew_beyond_the_limit_is_refused(tmp_path: Path) -> None:
    (tmp_path / "log.txt").write_bytes(b"x" * 10)
    event = resolve_attachment("log.txt", root=str(tmp_path), limit=10)
    (tmp_path / "log.txt").write_bytes(b"x" * 11)
    with pytest.raises(AttachmentRefused, match="grew beyond"):
        read_attachment(event, root=str(tmp_path), limit=10)
