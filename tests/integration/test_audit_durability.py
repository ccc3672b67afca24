"""Audit writes are durable, and when one cannot be written nothing runs (SPEC §6.5).

Each case goes through the real `opsroom run` console script with a catalog whose only
command creates a marker file, so "nothing was run" is checked on disk.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from support import OPSROOM, Opsroom, Result

TOUCH = """\
#!/usr/bin/env bash
# @describe Create the file it is given.
# @option --path! Where to create it
# @option --note* Anything at all
set -euo pipefail
touch "$OPSROOM_ARG_PATH"
"""

# Runs the console script with a file size limit: writes past it fail with EFBIG,
# as on a full disk. SIGXFSZ is ignored so the write fails instead of killing us.
LIMITED = (
    "import os, resource, signal, sys; "
    "signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
    "limit = int(sys.argv[1]); "
    "resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)); "
    "os.execv(sys.argv[2], sys.argv[2:])"
)


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    folder = tmp_path / "catalog"
    (folder / "mark").mkdir(parents=True)
    (folder / "mark" / "touch.sh").write_text(TOUCH, encoding="utf-8")
    return folder


@pytest.fixture
def store(opsroom: Opsroom, workdir: Path) -> Path:
    """An existing, empty store (created by a first, read-only-looking command)."""
    r = opsroom("jobs", "--json")
    assert r.code == 0, r.stderr
    assert json.loads(r.stdout) == []
    db = workdir / "opsroom.db"
    assert db.exists()
    return db


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("OPSROOM_")}


def assert_refused_and_nothing_ran(r: Result, marker: Path, opsroom: Opsroom) -> None:
    assert r.code == 2, r.stdout + r.stderr
    assert "the audit log cannot be written" in r.stdout + r.stderr
    assert "nothing was run" in r.stdout + r.stderr
    assert not marker.exists(), "the command ran although its audit entry was not written"
    jobs = opsroom("jobs", "--json")
    assert jobs.code == 0, jobs.stderr
    assert json.loads(jobs.stdout) == [], "a job was recorded although nothing was audited"
    verdict = opsroom("audit", "verify", "--json")
    assert verdict.code == 0
    assert json.loads(verdict.stdout)["entries"] == 0


def test_read_only_database_refuses_the_command(
    opsroom: Opsroom, store: Path, catalog: Path, tmp_path: Path
) -> None:
    # chmod does not stop root, so the database is opened read-only by SQLite itself.
    marker = tmp_path / "ran"
    url = f"sqlite:///file:{store}?mode=ro&uri=true"
    r = opsroom("run", "--catalog", str(catalog), "--store", url, f"!mark touch --path {marker}")
    assert "readonly" in r.stdout + r.stderr
    assert_refused_and_nothing_ran(r, marker, opsroom)


@contextmanager
def write_locked(db: Path) -> Iterator[None]:
    """Hold the database's write lock, as a stuck writer in another process would."""
    holder = sqlite3.connect(db, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_locked_database_refuses_the_command_after_the_busy_timeout(
    opsroom: Opsroom, store: Path, catalog: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    with write_locked(store):
        r = opsroom("run", "--catalog", str(catalog), f"!mark touch --path {marker}")
    assert r.code == 2, r.stdout + r.stderr
    assert "the audit log cannot be written" in r.stderr
    assert "database is locked" in r.stderr
    assert "nothing was run" in r.stderr
    assert not marker.exists(), "the command ran although the store could not be written"
    assert json.loads(opsroom("jobs", "--json").stdout) == []
    assert json.loads(opsroom("audit", "verify", "--json").stdout)["entries"] == 0


def test_full_disk_refuses_the_command_and_leaves_the_log_whole(
    opsroom: Opsroom, store: Path, catalog: Path, workdir: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    # The limit leaves room for SQLite's 32 KiB shared-memory file but not for an audit
    # entry carrying sixty 1,000-byte values (each short enough to be kept whole, and the
    # message under the 64 KiB a chat message may have), so the audit write is what fails.
    note = " ".join(f"--note {i:04d}{'x' * 996}" for i in range(60))
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            LIMITED,
            str(64 * 1024),
            OPSROOM,
            "run",
            "--catalog",
            str(catalog),
            f"!mark touch --path {marker} {note}",
        ],
        cwd=workdir,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    r = Result(proc.returncode, proc.stdout, proc.stderr)
    assert "disk I/O error" in r.stdout + r.stderr or "full" in r.stdout + r.stderr
    assert_refused_and_nothing_ran(r, marker, opsroom)
    # Once there is room again, the same command runs and the log verifies.
    ok = opsroom("run", "--catalog", str(catalog), f"!mark touch --path {marker} {note}")
    assert ok.code == 0, ok.stdout + ok.stderr
    assert marker.exists()
    verdict = opsroom("audit", "verify", "--json")
    assert verdict.code == 0
    assert json.loads(verdict.stdout)["entries"] == 3


def wal_syncs(trace: Path) -> int:
    """How many times the trace shows the WAL file flushed to disk."""
    flush = re.compile(r"\b(?:fsync|fdatasync)\(\d+<[^>]*opsroom\.db-wal>\)")
    return sum(1 for line in trace.read_text().splitlines() if flush.search(line))


def test_audit_entries_are_flushed_to_disk_and_output_writes_are_not(
    opsroom: Opsroom, store: Path, echo_catalog: Path, workdir: Path, tmp_path: Path
) -> None:
    strace = shutil.which("strace")
    assert strace is not None, "this test watches fsync calls with strace"
    trace = tmp_path / "trace"
    proc = subprocess.run(
        [
            strace,
            "-f",
            "-y",
            "-e",
            "trace=fsync,fdatasync",
            "-o",
            str(trace),
            OPSROOM,
            "run",
            "--catalog",
            str(echo_catalog),
            "!echo many-lines --lines 3000",
        ],
        cwd=workdir,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    entries = json.loads(opsroom("audit", "export").stdout)
    assert [e["action"] for e in entries] == ["request", "job.start", "job.end"]
    syncs = wal_syncs(trace)
    # Each audit commit is flushed (synchronous=FULL)...
    assert syncs >= len(entries), trace.read_text()
    # ...while the job's own writes (record, start, 3000 lines of output, end) are not;
    # the spare two are SQLite creating the WAL and checkpointing it on close.
    assert syncs <= len(entries) + 2, trace.read_text()
