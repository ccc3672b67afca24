"""`opsroom bench`: offered in a source checkout only; `--compare`'s runs and its table."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import opsroom
from support import Opsroom

PROJECT = Path(__file__).resolve().parents[2]
PEERS = PROJECT / "bench" / "peers"


def _compare() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_compare_under_test", PEERS / "compare.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_a_checkout_offers_bench(opsroom: Opsroom) -> None:
    listed = opsroom("--help")
    assert listed.code == 0
    assert "bench" in listed.stdout
    r = opsroom("bench", "--rounds", "2")
    assert r.code == 2
    assert "--rounds and --scratch apply only with --compare" in r.stderr


def test_an_installed_package_hides_bench_and_says_why(tmp_path: Path) -> None:
    # The package as an installation holds it: opsroom/ alone, no bench/ beside src/.
    site = tmp_path / "site-packages"
    shutil.copytree(
        Path(opsroom.__file__).parent, site / "opsroom", ignore=shutil.ignore_patterns("*.pyc")
    )
    env = {**os.environ, "PYTHONPATH": str(site)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "opsroom", *args]
        return subprocess.run(
            argv, env=env, cwd=tmp_path, capture_output=True, text=True, check=False
        )

    listed = run("--help")
    assert listed.returncode == 0, listed.stderr
    assert "bench" not in listed.stdout
    assert "serve" in listed.stdout
    assert "catalog" in listed.stdout
    asked = run("bench", "--compare")
    assert asked.returncode == 2
    assert "runs the benchmarks of a source checkout" in asked.stderr
    assert "Traceback" not in asked.stderr
    imported = subprocess.run(
        [sys.executable, "-c", "import opsroom; print(opsroom.__file__)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert imported.stdout.strip().startswith(str(site))  # it was the copy that ran


def test_compare_refuses_a_scratch_folder_inside_the_project(opsroom: Opsroom) -> None:
    inside = PROJECT / "peerbench-here"
    r = opsroom("bench", "--compare", "--scratch", str(inside))
    assert r.code != 0
    assert "is inside the project" in r.stderr
    assert not inside.exists()


def test_the_opsroom_runner_and_the_table(tmp_path: Path) -> None:
    compare = _compare()
    sizes = compare.Sizes(n=5, nsub=2, rounds=1, restarts=1, nbig=3, big=30)
    found = compare.bots(tmp_path, Path(sys.executable), None, sizes)
    (bot,) = (b for b in found if b.name == "opsroom")
    (tmp_path / "tmp").mkdir()
    env = compare.child_env(tmp_path / "tmp")
    first = bot.run([], env)
    assert isinstance(first, dict), first
    assert first["restart"] is False
    assert first["generated_commands"] == compare.GEN
    kept = tmp_path / "kept"
    restart = [bot.run(["--phases", "startup", "--keep", str(kept)], env) for _ in range(2)]
    assert all(isinstance(r, dict) and r["restart"] for r in restart), restart
    assert (kept / "cache").is_dir()  # the restart keeps its parse cache beside its store
    big = bot.run(["--phases", "startup,pong", "--n", "3"], env, big=True)
    assert isinstance(big, dict), big
    assert big["generated_commands"] == 30
    assert big["pong"]["n"] == 3  # the run's own --n: the last one given
    assert "subtrue" not in big

    errbot: dict[str, Any] = {
        "process_to_ready_s": first["startup_ms_from_process_start"] / 1000 * 2,
        "pong_seq": {"med_ms": first["pong"]["med_ms"] * 4},
        "subtrue_seq": {"med_ms": first["subtrue"]["med_ms"] / 10},
        "subtrue_tp": {"per_s": first["subtruetp"]["per_s"] / 2},
    }
    errbot_big = {"pong_seq": {"med_ms": big["pong"]["med_ms"] * 10}}
    runs = {
        "opsroom": {"full": [first], "restart": restart, "big": [big]},
        "errbot": {"full": [errbot], "restart": [errbot], "big": [errbot_big]},
    }
    table = {r.label: r for r in compare.rows(runs, sizes)}
    assert table["built-in round trip"].ratio == pytest.approx(0.25)
    assert table["built-in round trip"].verdict == ""  # its goal is at `big` commands
    assert table["built-in round trip, 30 commands"].ratio == pytest.approx(0.1)
    assert table["built-in round trip, 30 commands"].verdict == "met"
    assert table["process start → first reply, restart, 30 commands"].errbot is None
    assert table["trivial command (`true`), one at a time"].verdict == "NOT met"  # 10×
    assert table["trivial commands, 2 at once"].verdict == "met"  # 2× the throughput
    assert table["Python command (prints `hi`), one at a time"].verdict == ""  # no Errbot figure
    text = compare.format_table(list(table.values()), rounds=1, hubot=False)
    assert "| opsroom / Errbot | goal | verdict |" in text
    assert "Hubot" not in text
    assert "| 0.25× |  | (the goal is at 30 commands) |" in text
    assert "| 0.10× | ≤ 0.5× | met |" in text
    # Without a size to measure at, no row for it (and none of `big`'s runs are made).
    assert all(
        ", 30 commands" not in r.label for r in compare.rows(runs, compare.Sizes(5, 2, 1, 1))
    )
    json.dumps(first)  # what the runner saves is plain JSON


def test_a_run_that_fails_is_run_once_more_and_a_second_failure_is_said(tmp_path: Path) -> None:
    compare = _compare()
    # A bot that fails its first run of each kind and answers the second: a peer's hiccup.
    script = tmp_path / "flaky.py"
    script.write_text(
        "import json, pathlib, sys\n"
        "seen = pathlib.Path(sys.argv[1])\n"
        "count = int(seen.read_text()) + 1 if seen.exists() else 1\n"
        "seen.write_text(str(count))\n"
        "if count % 2:\n"
        "    sys.exit('AssertionError: no answer')\n"
        "print(json.dumps({'run': count}))\n"
    )
    flaky = compare.Bot(
        "flaky", (sys.executable, str(script), str(tmp_path / "seen")), tmp_path, tmp_path / "keep"
    )
    said: list[str] = []
    runs = compare._rounds(
        [flaky], compare.Sizes(n=1, nsub=1, rounds=1, restarts=1), said.append, {}
    )
    # Runs 1 (the untimed warm-up start), 3 (the full run) fail; 2 and 4 answer.
    assert runs["flaky"] == {"restart": [{"run": 2}], "full": [{"run": 4}], "big": []}
    assert said == [
        "flaky: the warm-up start failed: exit 1: AssertionError: no answer",
        "round 1 of 1: flaky",
        "flaky: a run failed (exit 1: AssertionError: no answer); running it once more",
    ]
    # Failing twice, the run is left out, and said so.
    broken = compare.Bot(
        "broken", (sys.executable, "-c", "raise SystemExit('down')"), tmp_path, tmp_path / "k2"
    )
    said.clear()
    runs = compare._rounds(
        [broken], compare.Sizes(n=1, nsub=1, rounds=1, restarts=0), said.append, {}
    )
    assert runs["broken"] == {"restart": [], "full": [], "big": []}
    assert said[-1] == "broken: a run failed again: exit 1: down"


def test_each_round_runs_the_built_ins_once_more_with_the_big_catalog(tmp_path: Path) -> None:
    compare = _compare()
    # A bot that answers with the size it was started for and the arguments it was given.
    script = tmp_path / "sized.py"
    script.write_text("import json, sys\nprint(json.dumps({'argv': sys.argv[1:]}))\n")
    bot = compare.Bot(
        "sized",
        (sys.executable, str(script), "--gen", "500"),
        tmp_path,
        tmp_path / "keep",
        (sys.executable, str(script), "--gen", "30"),
        tmp_path / "keep-30",
    )
    said: list[str] = []
    sizes = compare.Sizes(n=1, nsub=1, rounds=2, restarts=1, nbig=7, big=30)
    runs = compare._rounds([bot], sizes, said.append, {})
    assert said == ["round 1 of 2: sized", "round 2 of 2: sized"]
    assert [r["argv"][:2] for r in runs["sized"]["full"]] == [["--gen", "500"]] * 2
    keep = ["--phases", "startup", "--keep", str(tmp_path / "keep")]
    assert [r["argv"] for r in runs["sized"]["restart"]] == [["--gen", "500", *keep]] * 2
    big = [
        "--gen",
        "30",
        "--phases",
        "startup,pong",
        "--n",
        "7",
        "--keep",
        str(tmp_path / "keep-30"),
    ]
    assert [r["argv"] for r in runs["sized"]["big"]] == [big] * 2


def test_the_floors_are_measured_and_say_which_goals_are_out_of_reach(tmp_path: Path) -> None:
    compare = _compare()
    said: list[str] = []
    floors = compare.measure_floors(tmp_path / "floors", said.append)
    assert said == []
    assert isinstance(floors, dict), floors
    for key in ("durable_commit_ms", "bash_true_ms", "workdir_ms", "restart_ms"):
        assert floors[key] > 0, key
    parts = 2 * floors["durable_commit_ms"] + floors["bash_true_ms"]
    parts += floors["workdir_ms"] + floors["cgroups_ms"]
    assert floors["true_job_ms"] == pytest.approx(parts)
    assert floors["true_jobs_per_s"] == pytest.approx(
        floors["cores"] / (floors["bash_true_cpu_ms"] / 1000)
    )
    assert list((tmp_path / "floors").iterdir()) == []  # its scratch files are gone

    # Errbot's figures of a run: one floor beyond its goal, one within, one without a figure.
    sizes = compare.Sizes(n=5, nsub=2, rounds=1, restarts=1)
    errbot = {
        "subtrue_seq": {"med_ms": floors["true_job_ms"] / 3},  # the floor alone is 3×
        "subtrue_tp": {"per_s": floors["true_jobs_per_s"]},  # the floor is 1× its rate
    }
    runs = {"opsroom": {}, "errbot": {"full": [errbot], "restart": []}}
    rows = compare.floor_rows(floors, compare.rows(runs, sizes))
    assert [r.ratio for r in rows[:2]] == [pytest.approx(3.0), pytest.approx(1.0)]
    text = compare.format_floors(rows)
    lines = text.splitlines()
    assert "2 durable commits" in lines[2]
    assert lines[2].endswith("| 3.00× | ≤ 2× | out of reach |")
    assert lines[3].endswith("| 1.00× | ≥ 0.7× | within reach |")
    assert lines[4].endswith("| — | ≤ 0.5× |  |")  # no restart figure of Errbot's
