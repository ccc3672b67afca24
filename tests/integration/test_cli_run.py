"""`opsroom run` through the whole pipeline with real child processes (SPEC §7.2, §4.2, §5.1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from support import Opsroom

NASTY = "$(touch {x}); $HOME | && id `touch {x}` ' \" \\ *"


def test_python_script_gets_value_byte_for_byte(
    opsroom: Opsroom, echo_catalog: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "x"
    value = NASTY.format(x=marker)
    quoted = "'" + value.replace("'", "'\\''") + "'"
    r = opsroom("run", "--catalog", str(echo_catalog), f"!echo python-text {quoted}")
    assert r.code == 0, r.stderr
    assert f"TEXT=[{value}]" in r.stdout
    assert not marker.exists(), "a value was evaluated by a shell"


def test_shell_script_gets_value_byte_for_byte(
    opsroom: Opsroom, echo_catalog: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "x"
    value = NASTY.format(x=marker)
    quoted = "'" + value.replace("'", "'\\''") + "'"
    r = opsroom("run", "--catalog", str(echo_catalog), f"!echo shell-text --text {quoted}")
    assert r.code == 0, r.stderr
    assert f"TEXT=[{value}]" in r.stdout
    assert not marker.exists(), "a value was evaluated by a shell"


@pytest.mark.parametrize("form", ["--text=--force", "--text --force", "text=--force"])
def test_option_looking_value_stays_a_value(
    opsroom: Opsroom, echo_catalog: Path, form: str
) -> None:
    r = opsroom("run", "--catalog", str(echo_catalog), f"!echo shell-text {form}")
    assert r.code == 0, r.stdout + r.stderr
    assert "TEXT=[--force]" in r.stdout


def test_json_summary_is_the_last_line(opsroom: Opsroom, echo_catalog: Path) -> None:
    r = opsroom("run", "--json", "--catalog", str(echo_catalog), "!echo python-text hi --count 2")
    assert r.code == 0, r.stderr
    summary = r.summary
    assert set(summary) == {"outcome", "job_id", "state", "exit_code", "output"}
    assert summary["outcome"] == "succeeded"
    assert summary["state"] == "succeeded"
    assert summary["exit_code"] == 0
    assert summary["output"] == "TEXT=[hi]\nTEXT=[hi]"
    assert isinstance(summary["job_id"], int)
    replies = r.json_lines[:-1]
    assert replies, "replies come before the summary"
    assert all("blocks" in reply for reply in replies)


def test_failed_script_exits_1(opsroom: Opsroom, echo_catalog: Path) -> None:
    r = opsroom("run", "--json", "--catalog", str(echo_catalog), "!echo fail")
    assert r.code == 1
    assert r.summary["outcome"] == "failed"
    assert r.summary["state"] == "failed"
    assert r.summary["exit_code"] == 3
    assert "disk full" in r.summary["output"]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("!echo python-text hi --mode loud", "plain"),  # outside the choices
        ("!echo python-text hi --count many", "count"),  # wrong type
        ("!echo python-text hi --colour red", "colour"),  # unknown parameter
        ("!echo pyhton-text hi", "unknown command"),  # unknown command
        ("!echo shell-text", "text"),  # missing required
        ("!echo python-text 'unterminated", "quote"),  # tokenizer
    ],
    ids=["choice", "type", "unknown-param", "unknown-command", "missing", "quote"],
)
def test_refusals_exit_2_and_say_what_was_wrong(
    opsroom: Opsroom, echo_catalog: Path, text: str, needle: str
) -> None:
    r = opsroom("run", "--json", "--catalog", str(echo_catalog), text)
    assert r.code == 2
    assert r.summary["outcome"] == "refused"
    assert r.summary["job_id"] is None
    assert needle in r.summary["output"].lower()


def test_refusal_in_text_mode_shows_usage(opsroom: Opsroom, echo_catalog: Path) -> None:
    r = opsroom("run", "--catalog", str(echo_catalog), "!echo python-text hi --mode loud")
    assert r.code == 2
    assert "usage: !echo python-text" in r.stderr
    # Nothing ran: no job was recorded.
    jobs = opsroom("jobs", "--json", "--catalog", str(echo_catalog))
    assert jobs.json_lines == [[]]


def test_unknown_command_suggests(opsroom: Opsroom, echo_catalog: Path) -> None:
    r = opsroom("run", "--catalog", str(echo_catalog), "!echo pyhton-text hi")
    assert r.code == 2
    assert "echo python-text" in r.stderr


def test_returned_rows_show_as_a_table(opsroom: Opsroom, echo_catalog: Path) -> None:
    r = opsroom("run", "--catalog", str(echo_catalog), "!echo table --site store-0042")
    assert r.code == 0, r.stderr
    lines = r.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split() == ["site", "status"])
    assert lines[header + 2].split() == ["store-0042", "up"]
    assert lines[header + 3].split() == ["dc1", "degraded"]


def test_long_output_is_truncated_as_a_room_would_see_it(
    opsroom: Opsroom, echo_catalog: Path
) -> None:
    r = opsroom("run", "--json", "--catalog", str(echo_catalog), "!echo many-lines --lines 100")
    assert r.code == 0
    assert r.summary["output"].splitlines()[-1] == "line 100"
    assert len(r.summary["output"].splitlines()) == 100  # the store keeps everything
    text = opsroom("run", "--catalog", str(echo_catalog), "!echo many-lines --lines 100").stdout
    assert "60 more lines" in text
    assert "line 1\n" not in text


def test_jobs_json_lists_newest_first(opsroom: Opsroom, echo_catalog: Path) -> None:
    opsroom("run", "--catalog", str(echo_catalog), "!echo python-text one")
    opsroom(
        "run",
        "--as",
        "local:bob",
        "--room",
        "local:ops",
        "--catalog",
        str(echo_catalog),
        "!echo fail",
    )
    [jobs] = opsroom("jobs", "--json", "--catalog", str(echo_catalog)).json_lines
    assert [j["command"] for j in jobs] == ["echo fail", "echo python-text"]
    newest = jobs[0]
    assert newest["state"] == "failed"
    assert newest["requester"] == "local:bob"
    assert newest["room"] == "local:ops"
    assert newest["exit_code"] == 3
    assert jobs[1]["params"] == {"text": "one"}
    assert {
        "id",
        "command",
        "params",
        "state",
        "requester",
        "room",
        "created_at",
        "exit_code",
    } <= set(newest)


def test_state_carries_between_calls(opsroom: Opsroom, echo_catalog: Path) -> None:
    first = opsroom("run", "--json", "--catalog", str(echo_catalog), "!echo python-text hi")
    job_id = first.summary["job_id"]
    r = opsroom("run", "--catalog", str(echo_catalog), f"!job {job_id}")
    assert r.code == 0
    assert "succeeded" in r.stdout
    assert "TEXT=[hi]" in r.stdout


def test_chat_network_principal_is_refused_without_roles(
    opsroom: Opsroom, echo_catalog: Path
) -> None:
    r = opsroom(
        "run", "--as", "slack:U024BE7LH", "--catalog", str(echo_catalog), "!echo python-text hi"
    )
    assert r.code == 2
    assert "roles" in r.stderr


def test_bad_config_exits_2_naming_the_key(opsroom: Opsroom, workdir: Path) -> None:
    (workdir / "opsroom.toml").write_text("[runner]\ntimeot = 5\n")
    r = opsroom("run", "!version")
    assert r.code == 2
    assert "runner.timeot: unknown key" in r.stderr


def test_prefix_comes_from_the_environment(opsroom: Opsroom, echo_catalog: Path) -> None:
    default = opsroom("run", "--catalog", str(echo_catalog), "?echo python-text hi")
    assert default.code == 2, "with the default prefix `?echo` is not a command"
    r = opsroom(
        "run",
        "--catalog",
        str(echo_catalog),
        "?echo python-text hi",
        env={"OPSROOM_BOT_PREFIX": "?"},
    )
    assert r.code == 0, r.stderr
    assert "TEXT=[hi]" in r.stdout
    usage = opsroom(
        "run", "--catalog", str(echo_catalog), "?echo python-text", env={"OPSROOM_BOT_PREFIX": "?"}
    )
    assert "usage: ?echo python-text <text>" in usage.stderr
