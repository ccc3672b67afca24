"""A script that echoes its secret across every boundary the runner creates (issue 9 §5).

The real engine runs a real script that prints its secret, in several encodings, straddling
the 64 KiB line cut at every offset, in progress, status and table events, in attachment
names and contents, in a malformed event and a refused attachment whose text is cut short,
across the 4 MiB cut of an oversized event, and in its exit message. No byte of the secret
(not even half of it) may reach the chat, the SQLite file or the logs, and no other byte of
output may be lost.
"""

from __future__ import annotations

import base64
import logging
import textwrap
from pathlib import Path
from urllib.parse import quote

import pytest

from opsroom.config import Settings
from opsroom.model.jobs import JobState
from opsroom.policy.masking import MASK
from opsroom.testing import Bot

LIMIT = 64 * 1024  # the runner's line cut (runner.local.LINE_LIMIT)
SECRET = "Zq7-Kp9!Wm4#Hx2/vB+"
B64 = base64.b64encode(SECRET.encode()).decode()
URL = quote(SECRET, safe="")

SCRIPT = textwrap.dedent(
    '''\
    # opsroom: secrets = ["CANARY"]
    """Spill the canary across every boundary the runner creates."""

    import base64
    import json
    import os
    import sys
    import urllib.parse

    LIMIT = 64 * 1024


    def event(fd: int, data: dict) -> None:
        os.write(fd, (json.dumps(data) + "\\n").encode())


    def main() -> None:
        """Spill."""
        v = os.environ["CANARY"]
        fd = int(os.environ["OPSROOM_EVENTS_FD"])
        b64 = base64.b64encode(v.encode()).decode()
        url = urllib.parse.quote(v, safe="")
        # Each line is cut after LIMIT bytes: the form starts k characters before the cut.
        for k in range(1, len(v)):
            sys.stdout.write("x" * (LIMIT - k) + v + "\\n")
        for form in (b64, url):
            for k in (1, len(form) // 2, len(form) - 1):
                sys.stdout.write("x" * (LIMIT - k) + form + "\\n")
        # A line cut exactly before the secret, the secret ending the stream without a newline.
        sys.stdout.write("x" * LIMIT + v)
        sys.stdout.flush()
        sys.stderr.write("y" * (LIMIT - 3) + v + "\\n")
        event(fd, {"type": "progress", "percent": 50, "message": "as " + v})
        event(fd, {"type": "status", "text": "token " + b64, "level": "warning"})
        event(fd, {"type": "table", "columns": ["user", v], "rows": [["admin", url]]})
        with open(f"report-{v[:3]}.txt", "w") as f:
            f.write(f"password={v}\\n")
        event(fd, {"type": "attachment", "path": f"report-{v[:3]}.txt", "name": f"{v}.txt"})
        with open("dump.bin", "wb") as f:
            f.write(b"\\x00\\xff\\xfe" + v.encode() + b"\\x00")
        event(fd, {"type": "attachment", "path": "dump.bin"})
        # The runner shows only the first 200 characters of what it refuses.
        pad = "z" * (200 - len(v) // 2)
        event(fd, {"type": "bogus", "x": pad[28:] + v})
        event(fd, {"type": "attachment", "path": pad + v})
        # An event longer than the channel's 4 MiB limit, cut in the middle of the secret.
        head = '{"type": "status", "text": "'
        big = (head + "e" * (4 * 1024 * 1024 - len(head) - len(v) // 2) + v + '"}\\n').encode()
        while big:
            big = big[os.write(fd, big) :]
        raise SystemExit(f"failing with {v}")
    '''
)


def _pieces(form: str) -> list[str]:
    """The form and both of its halves: a cut secret must not show either."""
    half = len(form) // 2
    return [form, form[:half], form[half:]]


FORBIDDEN = [p for form in (SECRET, B64, URL) for p in _pieces(form)]


def _expected_stdout() -> str:
    """Everything the script printed on stdout, each form of the secret masked."""
    lines = [("x" * (LIMIT - k)) + MASK for k in range(1, len(SECRET))]
    for form in (B64, URL):
        lines += [("x" * (LIMIT - k)) + MASK for k in (1, len(form) // 2, len(form) - 1)]
    lines.append("x" * LIMIT + MASK)
    return "".join(lines)


async def test_a_secret_never_crosses_a_runner_boundary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    catalog = tmp_path / "catalog"
    (catalog / "sec").mkdir(parents=True)
    (catalog / "sec" / "spill.py").write_text(SCRIPT)
    monkeypatch.setenv("OPS_CANARY", SECRET)
    settings = Settings.model_validate({"secrets": {"CANARY": "env:OPS_CANARY"}})
    caplog.set_level(logging.INFO)  # every library's log that a deployment would keep
    caplog.set_level(logging.DEBUG, logger="opsroom")
    db = tmp_path / "opsroom.db"
    async with Bot.open(
        catalog_dir=str(catalog), store_url=f"sqlite:///{db}", settings=settings
    ) as bot:
        said = await bot.say("!sec spill")
        job_id = said.outcome.job_id
        assert job_id is not None
        assert said.outcome.state is JobState.FAILED
        store = bot.app.store
        output = await store.output(job_id)
        attachments = await store.attachments(job_id)
        contents = [await store.attachment_data(aid) for aid, *_ in attachments]
        events = await store.events(job_id)
        job = await store.get_job(job_id)

    # Nothing of the secret in the chat, in any form or half of one.
    shown = said.text + "\n" + repr(said.replies)
    for piece in FORBIDDEN:
        assert piece not in shown, f"{piece!r} reached the chat"
    # Nothing in the database file (and its journal), byte for byte.
    stored = [f for f in tmp_path.iterdir() if f.name.startswith(db.name)]
    assert stored, "the database file is there to search"
    for f in stored:
        data = f.read_bytes()
        for piece in FORBIDDEN:
            assert piece.encode() not in data, f"{piece!r} stored in {f.name}"
    # Nothing in the logs.
    for piece in FORBIDDEN:
        assert piece not in caplog.text

    # Nothing else was lost: every stdout byte is kept, only the secrets became masks.
    assert "".join(text for stream, text in output if stream == "stdout") == _expected_stdout()
    stderr = [text for stream, text in output if stream == "stderr"]
    assert "y" * (LIMIT - 3) + MASK in "".join(stderr)
    assert f"failing with {MASK}" in stderr
    assert sum("longer than 4194304 bytes" in t for t in stderr) == 1, "refused once, whole"
    # Events and files are there, masked.
    assert {"type": "progress", "percent": 50.0, "message": f"as {MASK}"} in events
    assert {"type": "status", "text": f"token {MASK}", "level": "warning"} in events
    assert {"type": "table", "columns": ["user", MASK], "rows": [["admin", MASK]]} in events
    assert [(name, ctype) for _, name, ctype, _ in attachments] == [(f"{MASK}.txt", "text/plain")]
    assert contents == [f"password={MASK}\n".encode()]
    assert "attachment dump.bin refused: it holds a secret" in said.text
    assert job is not None
    assert job.state is JobState.FAILED
