"""`opsroom audit verify|export` on a store filled by real `opsroom run` calls (SPEC §6.5, §7.2)."""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from opsroom.model.audit import AuditEvent
from opsroom.store import Store
from opsroom.store.audit_chain import entry_hash
from support import FIXTURES, OPSROOM, Opsroom

FIELDS = [
    "id",
    "at",
    "action",
    "principal",
    "room",
    "command",
    "params",
    "job_id",
    "outcome",
    "reason",
    "catalog_commit",
    "script_hash",
    "prev_hash",
    "hash",
]
RUNS = ("!echo python-text first", "!echo fail", "!echo shell-text --text third")


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three real runs: a request, a start and an end each, so entries #1–#9."""
    folder = tmp_path_factory.mktemp("recorded")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSROOM_")}
    for text in RUNS:
        proc = subprocess.run(
            [OPSROOM, "run", "--catalog", str(FIXTURES / "echo_catalog"), text],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode in (0, 1), proc.stderr
    return folder


@pytest.fixture
def trail(recorded: Path, workdir: Path) -> Path:
    """A fresh copy of the recorded store in the working folder, free to tamper with."""
    for file in recorded.glob("opsroom.db*"):
        shutil.copy(file, workdir / file.name)
    return workdir / "opsroom.db"


def raw(db: Path, *statements: tuple[str, tuple[Any, ...]] | str) -> None:
    conn = sqlite3.connect(db)
    with conn:
        for statement in statements:
            if isinstance(statement, str):
                conn.execute(statement)
            else:
                conn.execute(*statement)
    conn.close()


def rows(db: Path) -> dict[int, dict[str, Any]]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    found = {r["id"]: dict(r) for r in conn.execute("SELECT * FROM audit ORDER BY id")}
    conn.close()
    return found


def export(opsroom: Opsroom, *args: str) -> list[dict[str, Any]]:
    r = opsroom("audit", "export", *args)
    assert r.code == 0, r.stderr
    entries: list[dict[str, Any]] = json.loads(r.stdout)
    return entries


# --- tampering, each done with raw SQL as someone with write access to the file would ----


def edit_principal(db: Path) -> None:
    raw(db, "UPDATE audit SET principal = 'local:mallory' WHERE id = 5")


def edit_params(db: Path) -> None:
    raw(db, """UPDATE audit SET params = '{"text":"harmless"}' WHERE id = 1""")


def edit_time(db: Path) -> None:
    raw(db, "UPDATE audit SET at = '2020-01-01 00:00:00.000000' WHERE id = 7")


def delete_middle(db: Path) -> None:
    raw(db, "DELETE FROM audit WHERE id = 4")


def swap_contents(db: Path) -> None:
    """Entries #2 and #3 trade everything but their ids."""
    before = rows(db)
    columns = [c for c in FIELDS if c != "id"]
    # Column names are our own constants; only values are bound.
    update = "UPDATE audit SET " + ", ".join(f"{c} = ?" for c in columns) + " WHERE id = ?"  # noqa: S608
    raw(
        db,
        *((update, (*(before[src][c] for c in columns), dst)) for src, dst in ((3, 2), (2, 3))),
    )


def insert_forged(db: Path) -> None:
    """A new entry #4, correctly hashed onto #3; the later entries move up by one."""
    before = rows(db)
    at = datetime.fromisoformat(before[3]["at"]).replace(tzinfo=UTC)
    event = AuditEvent(action="request", principal="local:mallory", command="echo fail")
    digest = entry_hash(before[3]["hash"], 4, at, event)
    raw(
        db,
        "UPDATE audit SET id = -(id + 1) WHERE id > 3",
        "UPDATE audit SET id = -id WHERE id < 0",
        (
            "INSERT INTO audit (id, at, action, principal, room, command, params, outcome, "
            "reason, prev_hash, hash) VALUES (4, ?, 'request', 'local:mallory', '', "
            "'echo fail', NULL, '', '', ?, ?)",
            (before[3]["at"], before[3]["hash"], digest),
        ),
    )


def edit_and_rehash(db: Path) -> None:
    """Entry #5 edited and given a matching hash: the next entry's link gives it away."""
    entry = rows(db)[5]
    at = datetime.fromisoformat(entry["at"]).replace(tzinfo=UTC)
    event = AuditEvent(
        action=entry["action"],
        principal="local:mallory",
        room=entry["room"],
        command=entry["command"],
        params=json.loads(entry["params"]),
        job_id=entry["job_id"],
        outcome=entry["outcome"],
        reason=entry["reason"],
        catalog_commit=entry["catalog_commit"],
        script_hash=entry["script_hash"],
    )
    digest = entry_hash(entry["prev_hash"], 5, at, event)
    raw(db, ("UPDATE audit SET principal = 'local:mallory', hash = ? WHERE id = 5", (digest,)))


def insert_before_first(db: Path) -> None:
    raw(
        db,
        "INSERT INTO audit (id, at, action, principal, room, command, outcome, reason, "
        "prev_hash, hash) SELECT 0, at, action, 'local:mallory', room, command, outcome, "
        "reason, prev_hash, hash FROM audit WHERE id = 1",
    )


@pytest.mark.parametrize(
    ("tamper", "broken", "problem", "message"),
    [
        (edit_principal, 5, "edited", "entry #5: hash does not match its content (edited?)"),
        (edit_params, 1, "edited", "entry #1: hash does not match its content (edited?)"),
        (edit_time, 7, "edited", "entry #7: hash does not match its content (edited?)"),
        (
            delete_middle,
            5,
            "missing",
            "entry #5: previous-hash link broken — entry #4 missing (deleted?)",
        ),
        (
            swap_contents,
            2,
            "reordered",
            "entry #2: previous-hash link broken — it follows entry #3: entries reordered",
        ),
        (
            insert_forged,
            5,
            "inserted",
            "entry #5: previous-hash link broken — it follows entry #3, so entry #4 was inserted",
        ),
        (
            edit_and_rehash,
            6,
            "relinked",
            "entry #6: previous-hash link broken — entry #5 was replaced or rewritten",
        ),
        (
            insert_before_first,
            0,
            "inserted",
            "entry #0: unexpected id, expected #1 (inserted?)",
        ),
    ],
    ids=[
        "edit",
        "edit-params",
        "edit-time",
        "delete",
        "swap",
        "insert",
        "edit-and-rehash",
        "insert-before-first",
    ],
)
def test_verify_names_the_first_broken_entry(
    opsroom: Opsroom,
    trail: Path,
    tamper: Callable[[Path], None],
    broken: int,
    problem: str,
    message: str,
) -> None:
    assert opsroom("audit", "verify").code == 0
    tamper(trail)
    r = opsroom("audit", "verify")
    assert r.code == 1, r.stdout + r.stderr
    assert message in r.stdout
    r = opsroom("audit", "verify", "--json")
    assert r.code == 1
    verdict = json.loads(r.stdout)
    assert verdict["intact"] is False
    assert verdict["broken"]["id"] == broken
    assert verdict["broken"]["problem"] == problem
    # Everything before it still verifies.
    assert verdict["entries"] == len([i for i in rows(trail) if i < broken])


def test_an_untouched_log_verifies(opsroom: Opsroom, trail: Path) -> None:
    r = opsroom("audit", "verify")
    assert r.code == 0, r.stdout + r.stderr
    head = rows(trail)[9]["hash"]
    first = r.stdout.splitlines()[0]
    assert first.startswith("audit log intact: 9 entries, last #9 at ")
    assert first.endswith(f", head {head[:12]}")
    r = opsroom("audit", "verify", "--json")
    assert r.code == 0
    verdict = json.loads(r.stdout)
    assert verdict["intact"] is True
    assert verdict["broken"] is None
    assert (verdict["entries"], verdict["last_id"], verdict["head"]) == (9, 9, head)


def test_deleting_the_last_entries_is_caught_by_an_anchor(opsroom: Opsroom, trail: Path) -> None:
    verdict = json.loads(opsroom("audit", "verify", "--json").stdout)
    anchor = f"{verdict['last_id']}:{verdict['head'][:16]}"
    assert opsroom("audit", "verify", "--anchor", anchor).code == 0
    raw(trail, "DELETE FROM audit WHERE id > 6")
    # The chain alone is still consistent: that is what the anchor is for.
    assert opsroom("audit", "verify").code == 0
    r = opsroom("audit", "verify", "--anchor", anchor)
    assert r.code == 1
    assert "entry #9: missing — the log ends at #6 (truncated?)" in r.stdout


def test_a_rewritten_log_does_not_match_its_anchor(opsroom: Opsroom, trail: Path) -> None:
    verdict = json.loads(opsroom("audit", "verify", "--json").stdout)
    r = opsroom("audit", "verify", "--anchor", f"9:{'0' * 12}")
    assert r.code == 1
    assert f"entry #9: hash {verdict['head'][:12]} differs from the anchor" in r.stdout


@pytest.mark.parametrize("anchor", ["9", "nine:abcdef12", "9:abc", "9:not-hex-at-all"])
def test_a_bad_anchor_is_a_usage_error(opsroom: Opsroom, trail: Path, anchor: str) -> None:
    r = opsroom("audit", "verify", "--anchor", anchor)
    assert r.code == 2
    assert "--anchor" in r.stderr
    assert "ID:HASH" in r.stderr


def test_verify_without_a_store_says_so_and_creates_nothing(
    opsroom: Opsroom, workdir: Path
) -> None:
    r = opsroom("audit", "verify")
    assert r.code == 2
    assert "no audit log" in r.stderr
    assert not (workdir / "opsroom.db").exists()


def test_json_export_has_every_entry_in_order(opsroom: Opsroom, trail: Path) -> None:
    entries = export(opsroom)
    assert [e["id"] for e in entries] == list(range(1, 10))
    assert all(list(e) == FIELDS for e in entries)
    assert [e["action"] for e in entries[:3]] == ["request", "job.start", "job.end"]
    assert entries[0]["command"] == "echo python-text"
    assert entries[0]["params"] == {"text": "first"}
    assert entries[2]["outcome"] == "succeeded"
    assert entries[5]["outcome"] == "failed"
    assert entries[8]["params"] == {"text": "third"}
    assert entries[0]["prev_hash"] == "0" * 64
    for before, after in itertools.pairwise(entries):
        assert after["prev_hash"] == before["hash"]
    assert entries[-1]["hash"] == json.loads(opsroom("audit", "verify", "--json").stdout)["head"]
    assert all(datetime.fromisoformat(e["at"]).tzinfo is not None for e in entries)


def test_csv_export_matches_the_json_export(opsroom: Opsroom, trail: Path) -> None:
    r = opsroom("audit", "export", "--format", "csv")
    assert r.code == 0, r.stderr
    reader = csv.DictReader(io.StringIO(r.stdout, newline=""))
    assert reader.fieldnames == FIELDS
    from_csv = list(reader)
    from_json = export(opsroom, "--format", "json")
    assert len(from_csv) == len(from_json) == 9
    for row, entry in zip(from_csv, from_json, strict=True):
        assert json.loads(row["params"]) == entry["params"]  # parameters as JSON text
        for field in FIELDS:
            if field != "params":
                expected = entry[field]
                assert row[field] == ("" if expected is None else str(expected)), field


def test_export_to_a_file(opsroom: Opsroom, trail: Path, tmp_path: Path) -> None:
    target = tmp_path / "audit.csv"
    r = opsroom("audit", "export", "--format", "csv", "-o", str(target))
    assert r.code == 0, r.stderr
    assert r.stdout == ""
    assert "exported 9 audit entries" in r.stderr
    lines = target.read_text(encoding="utf-8").splitlines()
    assert lines[0] == ",".join(FIELDS)
    assert len(lines) == 10
    assert not Path(f"{target}.partial").exists()


def test_since_and_until_pick_a_time_window(
    opsroom: Opsroom, echo_catalog: Path, workdir: Path
) -> None:
    assert opsroom("run", "--catalog", str(echo_catalog), RUNS[0]).code == 0
    assert opsroom("run", "--catalog", str(echo_catalog), RUNS[1]).code == 1
    # Halfway between the first run's last entry and the second run's first: the second
    # process started after the first had ended, so the two times differ.
    at = {e["id"]: datetime.fromisoformat(e["at"]) for e in export(opsroom)}
    assert at[3] < at[4]
    between = (at[3] + (at[4] - at[3]) / 2).astimezone(UTC)

    later = export(opsroom, "--since", between.isoformat())
    assert [e["id"] for e in later] == [4, 5, 6]
    assert {e["command"] for e in later} == {"echo fail"}
    # A naive time is UTC.
    naive = between.replace(tzinfo=None).isoformat()
    assert [e["id"] for e in export(opsroom, "--until", naive)] == [1, 2, 3]
    assert [e["id"] for e in export(opsroom, "--since", "1h")] == [1, 2, 3, 4, 5, 6]
    assert [e["id"] for e in export(opsroom, "--since", "7d", "--until", "2999-01-01")] == [
        1,
        2,
        3,
        4,
        5,
        6,
    ]
    assert export(opsroom, "--since", "2999-01-01") == []
    r = opsroom("audit", "export", "--format", "csv", "--since", "2999-01-01")
    assert r.stdout.splitlines() == [",".join(FIELDS)]


def test_older_entries_fall_outside_a_relative_since(opsroom: Opsroom, trail: Path) -> None:
    # Backdating breaks the chain, but export is a read of what is there.
    raw(trail, "UPDATE audit SET at = '2000-01-01 00:00:00.000000' WHERE id <= 3")
    assert [e["id"] for e in export(opsroom, "--since", "24h")] == list(range(4, 10))
    assert [e["id"] for e in export(opsroom, "--until", "24h")] == [1, 2, 3]


@pytest.mark.parametrize("since", ["yesterday", "7 days", "2024-13-01", "-3d", ""])
def test_a_bad_since_is_a_usage_error(opsroom: Opsroom, trail: Path, since: str) -> None:
    r = opsroom("audit", "export", "--since", since)
    assert r.code == 2
    assert "--since" in r.stderr
    assert "7d" in r.stderr
    assert r.stdout == ""


def test_audit_is_listed_in_help(opsroom: Opsroom) -> None:
    r = opsroom("--help")
    assert r.code == 0
    assert "audit" in r.stdout
    r = opsroom("audit", "--help")
    assert "verify" in r.stdout
    assert "export" in r.stdout


async def test_long_logs_are_verified_and_exported_page_by_page(
    opsroom: Opsroom, workdir: Path
) -> None:
    store = await Store.open(f"sqlite:///{workdir / 'opsroom.db'}")
    try:
        for i in range(1, 2502):
            await store.append_audit(
                AuditEvent(action="request", principal=f"local:user{i % 7}", params={"n": i})
            )
    finally:
        await store.close()
    r = opsroom("audit", "verify")
    assert r.code == 0, r.stdout + r.stderr
    assert r.stdout.startswith("audit log intact: 2501 entries, last #2501 at ")
    entries = export(opsroom)
    assert [e["id"] for e in entries] == list(range(1, 2502))
    assert entries[-1]["params"] == {"n": 2501}
    csv_rows = opsroom("audit", "export", "--format", "csv").stdout.splitlines()
    assert len(csv_rows) == 2502
    raw(workdir / "opsroom.db", "UPDATE audit SET principal = 'local:mallory' WHERE id = 2345")
    r = opsroom("audit", "verify")
    assert r.code == 1
    assert "entry #2345: hash does not match its content (edited?)" in r.stdout


def test_an_absurd_age_is_a_usage_error_not_a_crash(opsroom: Opsroom) -> None:
    r = opsroom("audit", "export", "--since", "99999999999w", "--format", "json")
    assert r.code == 2
    assert "further than any date" in r.stderr
