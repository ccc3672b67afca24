"""opsroom beside Errbot and Hubot on this machine, in one run: `opsroom bench --compare`.

The peers are installed into a scratch folder, never into the project: Errbot in a virtual
environment of its own (pip), Hubot with npm (skipped, said in one line, when node or npm is
missing). Then, round after round, each bot runs the same phases (a built-in round trip, a
trivial command, a Python command — one at a time and many at once) with 500 generated
commands loaded, the order of the bots rotating each round so a drift in the machine's load
falls on all of them. The table gives the medians, opsroom / Errbot for every row with the
goals of issue 15 marked, and Hubot beside.

Start-up is measured twice: a *first start* (a catalog folder never seen, an empty store and
no caches: each round's full run) and a *restart* (the same catalog, store and caches as the
run before, as after a deploy or a reboot: two start-only runs per bot per round, after one
warm-up start). Children run with bytecode caching on, as installed software does.

    python bench/peers/compare.py [--quick] [--rounds N] [--scratch DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parents[1]
ERRBOT = "errbot==6.2.1"  # the version of the first side-by-side run (issue 15)
HUBOT = "hubot@14.1.0"
PIP = (ERRBOT, "pytest")  # pytest: Errbot's test backend imports it
GEN = 500  # commands loaded in every bot
RUN_TIMEOUT = 1800.0  # seconds one bot's run may take before it counts as failed

Figures = dict[str, float]


@dataclass(frozen=True, slots=True)
class Sizes:
    """How much each round does."""

    n: int  # built-in messages
    nsub: int  # command messages (each starts a child process)
    rounds: int
    restarts: int  # start-only runs per bot per round


FULL = Sizes(n=2000, nsub=200, rounds=3, restarts=2)
QUICK = Sizes(n=500, nsub=50, rounds=2, restarts=2)


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the table: a figure of each bot and what issue 15 asks of opsroom."""

    label: str
    unit: str  # "ms" (lower is better) or "/s" (higher is better)
    opsroom: float | None
    errbot: float | None
    hubot: float | None
    goal: float | None = None  # opsroom / Errbot must be <= this (ms) or >= this (/s)
    note: str = ""

    @property
    def ratio(self) -> float | None:
        """opsroom / Errbot."""
        if self.opsroom is None or not self.errbot:
            return None
        return self.opsroom / self.errbot

    @property
    def verdict(self) -> str:
        """met / NOT met / "" without a goal or a figure."""
        ratio = self.ratio
        if self.goal is None or ratio is None:
            return ""
        ok = ratio <= self.goal if self.unit == "ms" else ratio >= self.goal
        return "met" if ok else "NOT met"


# -- installing the peers -----------------------------------------------------------------


def scratch_folder(given: str | None) -> Path:
    """`--scratch`, or `${XDG_CACHE_HOME:-~/.cache}/opsroom/peerbench`; never inside the project."""
    if given:
        folder = Path(given).expanduser().resolve()
    else:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        folder = Path(base).resolve() / "opsroom" / "peerbench"
    if folder == PROJECT or PROJECT in folder.parents:
        raise SystemExit(f"opsroom bench: --scratch {folder} is inside the project: choose another")
    return folder


def _quiet(argv: Sequence[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(argv), cwd=cwd, capture_output=True, text=True, check=False, timeout=900
    )


def ensure_errbot(scratch: Path, say: Callable[[str], None]) -> Path:
    """The interpreter of the scratch Errbot environment, installed on first use."""
    venv = scratch / "venv-errbot"
    python = venv / "bin" / "python"
    want = ERRBOT.split("==")[1]
    probe = "import errbot.backends.test, importlib.metadata as m; print(m.version('errbot'))"
    if python.exists():
        done = _quiet([str(python), "-c", probe])
        if done.returncode == 0 and done.stdout.strip() == want:
            return python
    say(f"installing {ERRBOT} (and pytest, which its test backend imports) into {venv}")
    base = os.path.join(sys.base_prefix, "bin", "python3")
    for argv in (
        [base, "-m", "venv", "--clear", str(venv)],
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *PIP],
    ):
        done = _quiet(argv)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise SystemExit(f"opsroom bench: installing Errbot failed: {tail[0]}")
    return python


def ensure_hubot(scratch: Path, say: Callable[[str], None]) -> Path | None:
    """The scratch folder Hubot is installed in; None (said in one line) without node/npm."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        missing = " and ".join(n for n, p in (("node", node), ("npm", npm)) if p is None)
        say(f"Hubot skipped: {missing} not found on PATH; comparing with Errbot only.")
        return None
    folder = scratch / "hubot"
    want = HUBOT.split("@")[1]
    probe = "console.log(require('hubot/package.json').version)"
    if (folder / "node_modules" / "hubot").is_dir():
        done = _quiet([node, "-e", probe], cwd=folder)
        if done.returncode == 0 and done.stdout.strip() == want:
            return folder
    say(f"installing {HUBOT} into {folder}")
    folder.mkdir(parents=True, exist_ok=True)
    for argv in (
        [npm, "init", "-y"],
        [npm, "install", "--no-audit", "--no-fund", "--loglevel=error", HUBOT],
    ):
        done = _quiet(argv, cwd=folder)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            say(f"Hubot skipped: npm failed ({tail[0]}); comparing with Errbot only.")
            return None
    return folder


# -- running the bots ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bot:
    """How to run one bot's benchmark script."""

    name: str
    argv: tuple[str, ...]
    cwd: Path
    keep: Path  # its folder for restarts

    def run(self, extra: Sequence[str], env: dict[str, str]) -> dict[str, Any] | str:
        """One run: its JSON figures, or why there are none."""
        try:
            done = subprocess.run(
                [*self.argv, *extra],
                cwd=self.cwd,
                env=env,
                capture_output=True,
                text=True,
                check=False,
                timeout=RUN_TIMEOUT,
            )
        except subprocess.TimeoutExpired:
            return f"no answer within {RUN_TIMEOUT:.0f} s"
        lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
        if done.returncode != 0 or not lines:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            return f"exit {done.returncode}: {tail[0][:200]}"
        parsed: dict[str, Any] = json.loads(lines[-1])
        return parsed


def child_env(tmp: Path) -> dict[str, str]:
    """The environment of the runs: bytecode cached as when installed, no OPSROOM_* overrides,
    temporary files in `tmp` (Errbot's test backend leaves a data folder behind each start)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k != "PYTHONDONTWRITEBYTECODE" and not k.startswith("OPSROOM_")
    }
    env["HUBOT_LOG_LEVEL"] = "warn"
    env["TMPDIR"] = str(tmp)
    return env


def bots(scratch: Path, errbot_python: Path, hubot: Path | None, sizes: Sizes) -> list[Bot]:
    """The bots to compare, each with the arguments of a full run."""
    work = scratch / "work"
    common = ("--n", str(sizes.n), "--nsub", str(sizes.nsub))
    plugins = ("--gen-plugins", str(GEN // 10), "--cmds-per-plugin", "10")
    files = ("--files", str(GEN // 10), "--per-file", "10")
    found = [
        Bot(
            "opsroom",
            (sys.executable, str(HERE / "opsroom_peer.py"), "--gen", str(GEN), *common),
            scratch,
            work / "opsroom",
        ),
        Bot(
            "errbot",
            (str(errbot_python), str(HERE / "errbot_peer.py"), *plugins, *common),
            scratch,
            work / "errbot",
        ),
    ]
    if hubot is not None:
        real_python = os.path.join(sys.base_prefix, "bin", "python3")
        node = shutil.which("node") or "node"
        found.append(
            Bot(
                "hubot",
                (node, str(HERE / "hubot_peer.mjs"), *files, *common, "--py", real_python),
                hubot,
                work / "hubot",
            )
        )
    return found


def collect(
    found: list[Bot], sizes: Sizes, say: Callable[[str], None], scratch: Path
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Every run's figures: {bot: {"full": [...], "restart": [...]}}, rounds alternating."""
    tmp = scratch / "tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        return _rounds(found, sizes, say, child_env(tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _rounds(
    found: list[Bot], sizes: Sizes, say: Callable[[str], None], env: dict[str, str]
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        b.name: {"full": [], "restart": []} for b in found
    }
    for bot in found:  # one untimed start makes the kept folder, its caches and bytecode
        shutil.rmtree(bot.keep, ignore_errors=True)
        bot.keep.parent.mkdir(parents=True, exist_ok=True)
        warm = bot.run(["--phases", "startup", "--keep", str(bot.keep)], env)
        if isinstance(warm, str):
            say(f"{bot.name}: the warm-up start failed: {warm}")
    for r in range(sizes.rounds):
        order = found[r % len(found) :] + found[: r % len(found)]
        say(f"round {r + 1} of {sizes.rounds}: {', '.join(b.name for b in order)}")
        for bot in order:
            for _ in range(sizes.restarts):
                got = _attempt(bot, ["--phases", "startup", "--keep", str(bot.keep)], env, say)
                _keep(runs[bot.name]["restart"], got, bot.name, say)
            _keep(runs[bot.name]["full"], _attempt(bot, [], env, say), bot.name, say)
    return runs


def _attempt(
    bot: Bot, extra: Sequence[str], env: dict[str, str], say: Callable[[str], None]
) -> dict[str, Any] | str:
    """One run, run once more when it fails: a peer's hiccup (Errbot's test backend now and
    then answers a `!pong` with nothing) would otherwise cost the round its figures."""
    got = bot.run(extra, env)
    if isinstance(got, str):
        say(f"{bot.name}: a run failed ({got}); running it once more")
        got = bot.run(extra, env)
    return got


def _keep(into: list[dict[str, Any]], got: dict[str, Any] | str, name: str, say: Any) -> None:
    if isinstance(got, str):
        say(f"{name}: a run failed again: {got}")
    else:
        into.append(got)


# -- the table ----------------------------------------------------------------------------


def median_of(runs: list[dict[str, Any]], path: str, scale: float = 1.0) -> float | None:
    """The median over runs of the figure at `path` ("pong.med_ms"), times `scale`."""
    values = []
    for run in runs:
        value: Any = run
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if isinstance(value, int | float) and not isinstance(value, bool):
            values.append(float(value) * scale)
    return statistics.median(values) if values else None


def rows(runs: dict[str, dict[str, list[dict[str, Any]]]], sizes: Sizes) -> list[Row]:
    """The issue's table from the runs' figures."""
    o, e, h = (runs.get(n, {"full": [], "restart": []}) for n in ("opsroom", "errbot", "hubot"))

    def row(
        label: str, unit: str, keys: tuple[str, str, str], kind: str = "full", **kw: Any
    ) -> Row:
        scale_e = 1000.0 if keys[1].endswith("_s") and unit == "ms" else 1.0
        return Row(
            label,
            unit,
            median_of(o[kind], keys[0]),
            median_of(e[kind], keys[1], scale_e),
            median_of(h[kind], keys[2]),
            **kw,
        )

    start = ("startup_ms_from_process_start", "process_to_ready_s", "process_to_ready_ms")
    nsub = sizes.nsub
    return [
        row("process start → first reply, restart", "ms", start, "restart", goal=0.5),
        row("process start → first reply, first start", "ms", start, note="no goal: no cache"),
        row(
            "built-in round trip",
            "ms",
            ("pong.med_ms", "pong_seq.med_ms", "pong_seq.med_ms"),
            goal=0.5,
            note="goal at 10,000 commands; here 500",
        ),
        row(
            f"built-ins, {sizes.n} at once",
            "/s",
            ("pongtp.per_s", "pong_tp.per_s", "pong_tp.per_s"),
        ),
        row(
            "trivial command (`true`), one at a time",
            "ms",
            ("subtrue.med_ms", "subtrue_seq.med_ms", "subtrue_seq.med_ms"),
            goal=2.0,
        ),
        row(
            f"trivial commands, {nsub} at once",
            "/s",
            ("subtruetp.per_s", "subtrue_tp.per_s", "subtrue_tp.per_s"),
            goal=0.7,
        ),
        row(
            "Python command (prints `hi`), one at a time",
            "ms",
            ("subpy.med_ms", "subpy_seq.med_ms", "subpy_seq.med_ms"),
            goal=0.5,
        ),
        row(
            f"Python commands, {nsub} at once",
            "/s",
            ("subpytp.per_s", "subpy_tp.per_s", "subpy_tp.per_s"),
            goal=2.0,
        ),
    ]


def _figure(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "/s":
        return f"{value:,.0f} /s" if value >= 100 else f"{value:.1f} /s"
    return f"{value:.3f} ms" if value < 1 else f"{value:,.1f} ms"


def format_table(table: list[Row], *, rounds: int, hubot: bool) -> str:
    """The rows as a Markdown table: figures, opsroom / Errbot, the goal and whether it is met."""
    head = [f"medians of {rounds} rounds, {GEN} commands loaded", "opsroom", "Errbot 6.2"]
    head += ["Hubot 14"] if hubot else []
    head += ["opsroom / Errbot", "goal", "verdict"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in table:
        cells = [r.label, _figure(r.opsroom, r.unit), _figure(r.errbot, r.unit)]
        cells += [_figure(r.hubot, r.unit)] if hubot else []
        ratio = "—" if r.ratio is None else f"{r.ratio:.2f}×"
        goal = "" if r.goal is None else ("≤ " if r.unit == "ms" else "≥ ") + f"{r.goal:g}×"
        verdict = r.verdict + (f" ({r.note})" if r.note else "")
        cells += [ratio, goal, verdict.strip()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine() -> str:
    """What the figures were measured on."""
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"{when}; {os.cpu_count()} cores, Linux {platform.release()}, "
        f"Python {platform.python_version()}; load average {load}"
    )


def main(argv: list[str] | None = None) -> int:
    """Install the peers if needed, run the rounds and print the table; 0 when it ran."""
    ap = argparse.ArgumentParser(prog="opsroom bench --compare", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer messages: about 2 minutes")
    ap.add_argument("--rounds", type=int, help="rounds of every bot (default 3, quick 2)")
    ap.add_argument("--scratch", help="where the peers are installed and run")
    args = ap.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.rounds is not None:
        if not 1 <= args.rounds <= 50:
            raise SystemExit("opsroom bench: --rounds must be between 1 and 50")
        sizes = Sizes(sizes.n, sizes.nsub, args.rounds, sizes.restarts)

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    started = time.perf_counter()
    scratch = scratch_folder(args.scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    before = machine()
    errbot_python = ensure_errbot(scratch, say)
    hubot = ensure_hubot(scratch, say)
    runs = collect(bots(scratch, errbot_python, hubot, sizes), sizes, say, scratch)
    results = scratch / "results"
    results.mkdir(exist_ok=True)
    for name, kinds in runs.items():
        with open(results / f"{name}.jsonl", "w") as f:
            for kind, got in kinds.items():
                for run in got:
                    f.write(json.dumps({"kind": kind, **run}) + "\n")
    table = rows(runs, sizes)
    mode = "quick" if args.quick else "full"
    print(f"opsroom beside its peers ({mode}: {sizes.n} built-ins, {sizes.nsub} commands a phase)")
    print(f"started {before}")
    print(f"ended after {time.perf_counter() - started:.0f} s; raw figures in {results}\n")
    print(format_table(table, rounds=sizes.rounds, hubot=hubot is not None))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
