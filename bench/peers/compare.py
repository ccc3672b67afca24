"""opsroom beside Errbot and Hubot on this machine, in one run: `opsroom bench --compare`.

The peers are installed into a scratch folder, never into the project: Errbot in a virtual
environment of its own (pip), Hubot with npm (skipped, said in one line, when node or npm is
missing). Then, round after round, each bot runs the same phases (a built-in round trip, a
trivial command, a Python command — one at a time and many at once) with 500 generated
commands loaded, the order of the bots rotating each round so a drift in the machine's load
falls on all of them. The table gives the medians, opsroom / Errbot for every row with the
goals of issue 15 marked, and Hubot beside. The built-in round trip is measured once more
with 10,000 commands loaded, the size the issue's goal for it names (each bot restarted on a
catalog of its own of that size, which is made in an untimed first start).

Start-up is measured twice: a *first start* (a catalog folder never seen, an empty store and
no caches: each round's full run) and a *restart* (the same catalog, store and caches as the
run before, as after a deploy or a reboot: two start-only runs per bot per round, after one
warm-up start). Children run with bytecode caching on, as installed software does.

    python bench/peers/compare.py [--quick] [--rounds N] [--scratch DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
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
BIG = 10_000  # commands loaded for the built-in round trip's goal
RUN_TIMEOUT = 1800.0  # seconds one bot's run may take before it counts as failed

Figures = dict[str, float]


@dataclass(frozen=True, slots=True)
class Sizes:
    """How much each round does."""

    n: int  # built-in messages
    nsub: int  # command messages (each starts a child process)
    rounds: int
    restarts: int  # start-only runs per bot per round
    nbig: int = 0  # built-in messages with `big` commands loaded, once per bot per round
    big: int = BIG


FULL = Sizes(n=2000, nsub=200, rounds=3, restarts=2, nbig=300)
QUICK = Sizes(n=500, nsub=50, rounds=2, restarts=2, nbig=100)


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
    big_argv: tuple[str, ...] = ()  # a run with `Sizes.big` commands; () when not measured
    big_keep: Path | None = None

    def run(
        self, extra: Sequence[str], env: dict[str, str], *, big: bool = False
    ) -> dict[str, Any] | str:
        """One run (with `Sizes.big` commands when `big`): its JSON figures, or why none."""
        argv = self.big_argv if big else self.argv
        try:
            done = subprocess.run(
                [*argv, *extra],
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

    def opsroom(commands: int) -> tuple[str, ...]:
        return (sys.executable, str(HERE / "opsroom_peer.py"), "--gen", str(commands), *common)

    def errbot(commands: int) -> tuple[str, ...]:
        plugins = ("--gen-plugins", str(commands // 10), "--cmds-per-plugin", "10")
        return (str(errbot_python), str(HERE / "errbot_peer.py"), *plugins, *common)

    def bot(name: str, argv: Callable[[int], tuple[str, ...]], cwd: Path) -> Bot:
        big = argv(sizes.big) if sizes.nbig else ()
        return Bot(name, argv(GEN), cwd, work / name, big, work / f"{name}-{sizes.big}")

    found = [bot("opsroom", opsroom, scratch), bot("errbot", errbot, scratch)]
    if hubot is not None:
        real_python = os.path.join(sys.base_prefix, "bin", "python3")
        node = shutil.which("node") or "node"

        def hubot_argv(commands: int) -> tuple[str, ...]:
            files = ("--files", str(commands // 10), "--per-file", "10")
            script = str(HERE / "hubot_peer.mjs")
            return (node, script, *files, *common, "--py", real_python)

        found.append(bot("hubot", hubot_argv, hubot))
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
        b.name: {"full": [], "restart": [], "big": []} for b in found
    }
    for bot in found:  # one untimed start makes the kept folders, their caches and bytecode
        for keep, big in ((bot.keep, False), (bot.big_keep, True)):
            if keep is None or (big and not bot.big_argv):
                continue
            shutil.rmtree(keep, ignore_errors=True)
            keep.parent.mkdir(parents=True, exist_ok=True)
            warm = bot.run(["--phases", "startup", "--keep", str(keep)], env, big=big)
            if isinstance(warm, str):
                say(f"{bot.name}: the warm-up start{' (big)' if big else ''} failed: {warm}")
    for r in range(sizes.rounds):
        order = found[r % len(found) :] + found[: r % len(found)]
        say(f"round {r + 1} of {sizes.rounds}: {', '.join(b.name for b in order)}")
        for bot in order:
            for _ in range(sizes.restarts):
                got = _attempt(bot, ["--phases", "startup", "--keep", str(bot.keep)], env, say)
                _keep(runs[bot.name]["restart"], got, bot.name, say)
            _keep(runs[bot.name]["full"], _attempt(bot, [], env, say), bot.name, say)
            if bot.big_argv and bot.big_keep is not None:
                pong = ["--phases", "startup,pong", "--n", str(sizes.nbig)]
                got = _attempt(bot, [*pong, "--keep", str(bot.big_keep)], env, say, big=True)
                _keep(runs[bot.name]["big"], got, bot.name, say)
    return runs


def _attempt(
    bot: Bot,
    extra: Sequence[str],
    env: dict[str, str],
    say: Callable[[str], None],
    *,
    big: bool = False,
) -> dict[str, Any] | str:
    """One run, run once more when it fails: a peer's hiccup (Errbot's test backend now and
    then answers a `!pong` with nothing) would otherwise cost the round its figures."""
    got = bot.run(extra, env, big=big)
    if isinstance(got, str):
        say(f"{bot.name}: a run failed ({got}); running it once more")
        got = bot.run(extra, env, big=big)
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
    none: dict[str, list[dict[str, Any]]] = {"full": [], "restart": [], "big": []}
    o, e, h = ({**none, **runs.get(n, {})} for n in ("opsroom", "errbot", "hubot"))

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
    pong = ("pong.med_ms", "pong_seq.med_ms", "pong_seq.med_ms")
    nsub = sizes.nsub
    big = f"{sizes.big:,} commands"
    found = [
        row("process start → first reply, restart", "ms", start, "restart", goal=0.5),
        row("process start → first reply, first start", "ms", start, note="no goal: no cache"),
        row("built-in round trip", "ms", pong, note=f"the goal is at {big}"),
    ]
    if sizes.nbig:
        found += [
            row(f"built-in round trip, {big}", "ms", pong, "big", goal=0.5),
            row(f"process start → first reply, restart, {big}", "ms", start, "big"),
        ]
    found += [
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
    return found


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


def measure_floors(tmp: Path, say: Callable[[str], None]) -> dict[str, Any] | None:
    """`floors.py`'s figures, measured in `tmp` (the runs' file system); None, said, when it
    failed."""
    tmp.mkdir(parents=True, exist_ok=True)
    bot = Bot("floors", (sys.executable, str(HERE / "floors.py"), "--folder", str(tmp)), tmp, tmp)
    got = bot.run([], child_env(tmp))
    if isinstance(got, str):
        say(f"the floors could not be measured: {got}")
        return None
    return got


def floor_rows(floors: dict[str, Any], table: list[Row]) -> list[Row]:
    """The least each unmet goal's row costs here with no opsroom code (floors.py), beside
    Errbot's figure of the same run: `opsroom` holds the floor."""
    errbot = {r.label: r.errbot for r in table}
    commit, bash = floors["durable_commit_ms"], floors["bash_true_ms"]
    where = ", ".join(floors["cgroup_hierarchies"]) or "none here"
    true_label = next(label for label in errbot if label.startswith("trivial commands, "))
    return [
        Row(
            f"`true` one at a time: 2 durable commits ({commit:.2f} ms each), `bash true.sh` "
            f"({bash:.2f} ms), its folder ({floors['workdir_ms']:.2f} ms), its cgroups "
            f"({where}: {floors['cgroups_ms']:.2f} ms)",
            "ms",
            floors["true_job_ms"],
            errbot.get("trivial command (`true`), one at a time"),
            None,
            goal=2.0,
        ),
        Row(
            f"`true` at once: `bash true.sh`'s CPU ({floors['bash_true_cpu_ms']:.2f} ms a job) "
            f"on {floors['cores']} cores, nothing else",
            "/s",
            floors["true_jobs_per_s"],
            errbot.get(true_label),
            None,
            goal=0.7,
        ),
        Row(
            "restart: a fresh interpreter importing asyncio, SQLAlchemy's asyncio engine and "
            "pydantic, nothing of opsroom",
            "ms",
            floors["restart_ms"],
            errbot.get("process start → first reply, restart"),
            None,
            goal=0.5,
        ),
    ]


def format_floors(floors: list[Row]) -> str:
    """The floors as a Markdown table: a floor beyond the goal puts the goal out of reach."""
    head = ["the least it can cost here (no opsroom code)", "floor", "Errbot 6.2"]
    head += ["floor / Errbot", "goal", "the goal here"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in floors:
        ratio = "—" if r.ratio is None else f"{r.ratio:.2f}×"
        goal = "" if r.goal is None else ("≤ " if r.unit == "ms" else "≥ ") + f"{r.goal:g}×"
        reach = {"met": "within reach", "NOT met": "out of reach"}.get(r.verdict, "")
        cells = [r.label, _figure(r.opsroom, r.unit), _figure(r.errbot, r.unit), ratio, goal]
        lines.append("| " + " | ".join([*cells, reach]) + " |")
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
        sizes = dataclasses.replace(sizes, rounds=args.rounds)

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    started = time.perf_counter()
    scratch = scratch_folder(args.scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    before = machine()
    errbot_python = ensure_errbot(scratch, say)
    hubot = ensure_hubot(scratch, say)
    runs = collect(bots(scratch, errbot_python, hubot, sizes), sizes, say, scratch)
    say("measuring the floors (floors.py)")
    floors = measure_floors(scratch / "floors", say)
    results = scratch / "results"
    results.mkdir(exist_ok=True)
    if floors is not None:
        (results / "floors.json").write_text(json.dumps(floors) + "\n")
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
    if floors is not None:
        print("\nFloors: what the unmet goals' rows cost on this machine with no opsroom code")
        print("at all (bench/peers/floors.py), beside Errbot's figures above.\n")
        print(format_floors(floor_rows(floors, table)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
