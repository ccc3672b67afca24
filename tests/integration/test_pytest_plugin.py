"""A team tests its own scripts with the installed `bot` fixture (the `pytest11` plugin).

Each test writes a small scripts repository into tmp_path — scripts, an opsroom.toml, a
`tests/` folder with no conftest — and runs pytest on it in a child process, as the team
would: the plugin comes from the installed package's entry point, the scripts run as real
child processes, and the team's passing and failing tests are reported as such.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

from support import Result

GREET = """\
#!/usr/bin/env bash
# @describe Greet someone by name.
# @arg name! Who to greet
set -euo pipefail
echo "hello, ${OPSROOM_ARG_NAME}"
"""

TEAM_CONFIG = """\
[catalog]
path = "scripts"

[[roles]]
name = "ops"
members = ["slack:UALICE", "slack:UBOB"]
allow = ["*"]

[[roles]]
name = "leads"
members = ["slack:UBOB"]
allow = ["deploy"]

[[roles]]
name = "night-shift"
members = ["slack:UCAROL"]
allow = ["greet"]
rooms = ["slack:CNIGHT"]
"""

TEAM_SCRIPTS = {
    "greet.sh": GREET,
    "broken.sh": """\
        #!/usr/bin/env bash
        # @describe A script with a bug: it always fails.
        echo "checking the disk"
        echo "disk full" >&2
        exit 3
        """,
    "deploy.sh": """\
        #!/usr/bin/env bash
        # @describe Deploy a service.
        # @arg service![web|api] The service to deploy
        # opsroom: approval = "leads"
        set -euo pipefail
        echo "deployed ${OPSROOM_ARG_SERVICE}"
        """,
    "wait.sh": """\
        #!/usr/bin/env bash
        # @describe Wait until someone cancels it.
        echo "waiting"
        sleep 600
        echo "done waiting"
        """,
    "disk/report.py": '''\
        """Report the disk usage of a host."""

        from opsroom import script as ops


        def main(host: str) -> list[dict[str, str]]:
            """Report the disk usage of a host.

            Args:
                host: The host to look at.
            """
            ops.status(f"{host} looked at", "success")
            with open("usage.csv", "w") as f:
                f.write("mount,used\\n/,41%\\n")
            ops.attach("usage.csv", content_type="text/csv")
            return [{"mount": "/", "used": "41%"}, {"mount": "/var", "used": "87%"}]
        ''',
}

# What a team writes: plain functions, the `bot` fixture, nothing imported from opsroom.
TEAM_TESTS = """\
def test_greets_by_name(bot):
    said = bot.as_("slack:UALICE").say("!greet Ada")
    assert said.succeeded
    assert "hello, Ada" in said.text


def test_a_wrong_expectation(bot):
    said = bot.as_("slack:UALICE").say("!greet Ada")
    assert "good morning, Ada" in said.text


def test_a_missing_name_is_refused(bot):
    said = bot.as_("slack:UALICE").say("!greet")
    assert said.refused
    assert said.job_id is None


def test_strangers_are_refused_and_audited(bot):
    said = bot.say("!greet Ada", as_="slack:USTRANGER")
    assert said.refused
    assert [r.event.outcome for r in bot.audit()] == ["denied"]


def test_the_night_shift_greets_only_in_its_room(bot):
    carol = bot.as_("slack:UCAROL")
    assert carol.say("!greet Ada").refused
    assert carol.in_room("slack:CNIGHT").say("!greet Ada").succeeded


def test_a_broken_script_fails(bot):
    said = bot.as_("slack:UALICE").say("!broken")
    assert not said.succeeded
    assert said.exit_code == 3
    assert bot.output(said.job_id, stream="stderr") == "disk full"
    assert bot.output(said.job_id) == "checking the disk\\ndisk full"


def test_a_broken_script_expected_to_work(bot):
    said = bot.as_("slack:UALICE").say("!broken")
    assert said.succeeded


def test_tables_events_and_files(bot):
    said = bot.as_("slack:UALICE").say("!disk report web1")
    assert said.succeeded, said
    assert said.tables[0].rows == (("/", "41%"), ("/var", "87%"))
    assert bot.tables(said.job_id) == list(said.tables)
    assert [f.name for f in said.files] == ["usage.csv"]
    [kept] = bot.attachments(said.job_id)
    assert (kept.name, kept.content_type) == ("usage.csv", "text/csv")
    assert kept.text == "mount,used\\n/,41%\\n"
    status = {"type": "status", "text": "web1 looked at", "level": "success"}
    assert status in bot.events(said.job_id)


def test_a_deploy_needs_a_second_person(bot):
    alice, bob = bot.as_("slack:UALICE"), bot.as_("slack:UBOB")
    asked = alice.say("!deploy web")
    assert asked.awaiting_approval
    assert alice.approve(asked.job_id).refused
    done = bob.approve(asked.job_id)
    assert done.succeeded, done
    assert bot.output(asked.job_id) == "deployed web"
    assert bot.job(asked.job_id).requester == "slack:UALICE"


def test_a_denied_deploy_never_runs(bot):
    asked = bot.as_("slack:UALICE").say("!deploy api")
    bot.as_("slack:UBOB").deny(asked.job_id, "not today")
    assert bot.wait(asked.job_id).state == "denied"
    assert bot.output(asked.job_id) == ""


def test_a_long_job_is_cancelled_while_it_runs(bot):
    alice = bot.as_("slack:UALICE")
    running = alice.start("!wait")
    job = running.job_id()
    assert alice.cancel(job).succeeded
    said = running.result()
    assert said.state == "cancelled", said
    assert bot.wait(job).state == "cancelled"
    assert "done waiting" not in bot.output(job)
"""

TEAM_EXPECTED = {
    "test_greets_by_name": "PASSED",
    "test_a_wrong_expectation": "FAILED",
    "test_a_missing_name_is_refused": "PASSED",
    "test_strangers_are_refused_and_audited": "PASSED",
    "test_the_night_shift_greets_only_in_its_room": "PASSED",
    "test_a_broken_script_fails": "PASSED",
    "test_a_broken_script_expected_to_work": "FAILED",
    "test_tables_events_and_files": "PASSED",
    "test_a_deploy_needs_a_second_person": "PASSED",
    "test_a_denied_deploy_never_runs": "PASSED",
    "test_a_long_job_is_cancelled_while_it_runs": "PASSED",
}

GREET_TEST = """\
def test_greet(bot):
    said = bot.say("!greet Ada")
    assert said.succeeded, said
"""

_SUMMARY = re.compile(r"^(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS) \S+::(\w+)", re.MULTILINE)


def _repo(root: Path, files: dict[str, str]) -> Path:
    """A team's scripts repository: a git work tree holding `files`."""
    root.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return root


def _pytest(cwd: Path, *args: str) -> Result:
    """The team's own `pytest` run in `cwd`, with nothing of opsroom's test setup around it."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPSROOM_", "PYTEST_")) and k != "PYTHONPATH"
    }
    env["COLUMNS"] = "200"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def _outcomes(run: Result) -> dict[str, str]:
    return {name: outcome for outcome, name in _SUMMARY.findall(run.stdout)}


def _report_of(run: Result, test: str) -> str:
    """The part of pytest's report about one failed or erroring test."""
    header = re.compile(rf"^_+ (?:ERROR at setup of )?{test} _+$", re.MULTILINE)
    found = header.search(run.stdout)
    assert found is not None, run.stdout
    rest = run.stdout[found.end() :]
    end = re.search(r"^(?:_{3,} |={3,} )", rest, re.MULTILINE)
    return rest[: end.start()] if end else rest


def test_a_team_tests_its_scripts_with_the_bot_fixture(tmp_path: Path) -> None:
    files = {"opsroom.toml": TEAM_CONFIG, "tests/test_scripts.py": TEAM_TESTS}
    files.update({f"scripts/{name}": text for name, text in TEAM_SCRIPTS.items()})
    repo = _repo(tmp_path / "ops-scripts", files)

    run = _pytest(repo)

    assert _outcomes(run) == TEAM_EXPECTED, run.stdout + run.stderr
    assert run.code == 1  # pytest's "some tests failed"
    # A failed expectation shows what the room saw; a failed script its exit code and output.
    wrong = _report_of(run, "test_a_wrong_expectation")
    assert "'good morning, Ada' in '  hello, Ada\\n" in wrong
    broken = _report_of(run, "test_a_broken_script_expected_to_work")
    assert "Said(failed, job 1 failed, exit code 3: " in broken
    assert "disk full" in broken


def test_the_command_line_names_the_catalog_and_the_config(tmp_path: Path) -> None:
    strict = '[[roles]]\nname = "ops"\nmembers = ["slack:UALICE"]\nallow = ["*"]\n'
    repo = _repo(
        tmp_path / "repo",
        {
            "ops/greet.sh": GREET,
            "tests/test_greet.py": GREET_TEST,
            "strict.toml": strict,
            "typo.toml": '[runner]\ntiemout = "1m"\n',
        },
    )

    nothing = _pytest(repo)
    assert _outcomes(nothing) == {"test_greet": "ERROR"}, nothing.stdout
    said = _report_of(nothing, "test_greet")
    assert "opsroom: the bot fixture has no catalog to serve" in said
    assert "--opsroom-catalog DIR" in said
    assert "Traceback" not in said
    assert "def opsroom_catalog" not in said

    missing = _pytest(repo, "--opsroom-catalog", "opz")
    assert _outcomes(missing) == {"test_greet": "ERROR"}, missing.stdout
    report = _report_of(missing, "test_greet").strip()
    assert (
        report
        == f"opsroom: the catalog folder {repo / 'opz'} (from --opsroom-catalog) does not exist"
    )

    named = _pytest(repo, "--opsroom-catalog", "ops")
    assert _outcomes(named) == {"test_greet": "PASSED"}, named.stdout

    # With roles configured, the fixture's default user (local:tester) holds none.
    strict_run = _pytest(repo, "--opsroom-catalog", "ops", "--opsroom-config", "strict.toml")
    assert _outcomes(strict_run) == {"test_greet": "FAILED"}, strict_run.stdout
    assert "Said(refused" in _report_of(strict_run, "test_greet")

    typo = _pytest(repo, "--opsroom-catalog", "ops", "--opsroom-config", "typo.toml")
    assert _outcomes(typo) == {"test_greet": "ERROR"}, typo.stdout
    report = _report_of(typo, "test_greet").strip()
    assert report == f"opsroom: {repo / 'typo.toml'}: runner.tiemout: unknown key"


def test_the_ini_file_names_the_catalog_and_the_config(tmp_path: Path) -> None:
    override = """\
        from pathlib import Path

        import pytest


        @pytest.fixture
        def opsroom_catalog():
            return Path(__file__).parent.parent / "other"


        def test_the_overriding_catalog_is_served(bot):
            alice = bot.as_("slack:UALICE")
            said = alice.say("!shout Ada")
            assert said.succeeded, said
            assert "HELLO, ADA" in said.text
            assert "unknown command" in alice.say("!greet Ada").text
        """
    shout = GREET.replace("hello, ${OPSROOM_ARG_NAME}", "HELLO, ${OPSROOM_ARG_NAME^^}")
    repo = _repo(
        tmp_path / "repo",
        {
            "pytest.ini": "[pytest]\nopsroom_catalog = ops\nopsroom_config = conf/ops.toml\n",
            "conf/ops.toml": '[[roles]]\nname = "ops"\nmembers = ["slack:UALICE"]\nallow = ["*"]\n',
            "ops/greet.sh": GREET,
            "other/shout.sh": shout,
            "tests/test_greet.py": """\
                def test_alice_may_greet(bot):
                    said = bot.as_("slack:UALICE").say("!greet Ada")
                    assert said.succeeded, said

                def test_others_may_not(bot):
                    assert bot.say("!greet Ada").refused
                """,
            "tests/test_override.py": override,
        },
    )

    # Started from a subfolder: the ini file's paths are relative to the ini file.
    run = _pytest(repo / "tests")

    assert _outcomes(run) == {
        "test_alice_may_greet": "PASSED",
        "test_others_may_not": "PASSED",
        "test_the_overriding_catalog_is_served": "PASSED",
    }, run.stdout + run.stderr
    assert run.code == 0


def test_loading_the_plugin_does_not_load_the_engine() -> None:
    # pytest imports the plugin in every run where opsroom is installed.
    probe = (
        "import sys, opsroom.testing; heavy = ('opsroom.', 'sqlalchemy', 'pydantic'); "
        "print(sorted(m for m in sys.modules if m.startswith(heavy)))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert proc.stdout.strip() == "['opsroom.testing']"


def test_importing_bot_does_not_import_pytest() -> None:
    # A program driving `Bot` (a team's own harness, the start-up benchmark) starts without
    # pytest: only pytest itself loads the fixtures' module (issue 15: start-up).
    probe = (
        "import sys; from opsroom.testing import Bot, SyncBot; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pytest', '_pytest')))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert proc.stdout.strip() == "[]"
