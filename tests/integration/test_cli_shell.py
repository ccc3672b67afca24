"""`opsroom shell`: the terminal chat a newcomer meets first."""

from __future__ import annotations

from pathlib import Path

from support import Opsroom


def test_shell_answers_help_and_runs_an_example(opsroom: Opsroom, workdir: Path) -> None:
    r = opsroom("shell", input="help\nstore status 42\njobs\n")
    assert r.code == 0, r.stderr
    out = r.stdout
    # help lists the bundled example catalog
    for name in ("store status", "network status", "storage migrate", "chef promote"):
        assert name in out
    # the example ran as a job and showed its table
    assert "job 1 store status: succeeded" in out
    assert (workdir / "opsroom.db").exists(), "jobs are kept in the working folder"


def test_shell_prefix_is_optional_and_errors_do_not_end_it(
    opsroom: Opsroom, echo_catalog: Path
) -> None:
    r = opsroom(
        "shell",
        "--catalog",
        str(echo_catalog),
        input="!echo python-text one\necho nope\necho python-text two\n",
    )
    assert r.code == 0
    assert "TEXT=[one]" in r.stdout
    assert "unknown command" in r.stdout
    assert "TEXT=[two]" in r.stdout


def test_help_for_one_command_shows_usage_and_parameters(
    opsroom: Opsroom, echo_catalog: Path
) -> None:
    r = opsroom("run", "--catalog", str(echo_catalog), "!help echo python-text")
    assert r.code == 0, r.stderr
    assert "!echo python-text <text> [--count <int>] [--mode plain|upper]" in r.stdout
    assert "--mode (string; one of plain, upper; default plain) — How to print it." in r.stdout


def test_help_with_search_words(opsroom: Opsroom, echo_catalog: Path) -> None:
    r = opsroom("run", "--catalog", str(echo_catalog), "!help rows")
    assert r.code == 0
    assert "echo table" in r.stdout
    assert "echo fail" not in r.stdout


def test_shell_shows_live_progress_of_a_long_job(opsroom: Opsroom) -> None:
    r = opsroom(
        "shell",
        input="storage migrate netapp-fas01 --volumes 4 --seconds-per-volume 0.8\n",
        timeout=60,
    )
    assert r.code == 0, r.stderr
    bars = [line for line in r.stdout.splitlines() if line.startswith("[") and "%" in line]
    assert len(bars) >= 2, "progress shows while the migration runs, not only at the end"
    assert "succeeded" in r.stdout
