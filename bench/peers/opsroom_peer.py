"""opsroom in-process through its own test driver (`opsroom.testing.Bot`): the same phases
as errbot_peer.py and hubot_peer.mjs, so the figures stand side by side.

Phases:
  startup   import opsroom + Bot.open(catalog of G generated commands) until the `!version`
            reply (the figure is from process start)
  pong      sequential `!version` round trips (a built-in: parse, policy, audit, reply)
  pongtp    N `!version` messages at once
  subtrue   a shell command whose script is `true`, one at a time, NSUB times
  subtruetp NSUB of them at once
  subpy     a Python command printing `hi`, one at a time
  subpytp   NSUB at once

    python opsroom_peer.py --gen 500 --n 2000 --nsub 200 [--keep DIR]

Without --keep everything is new (a first start: a catalog folder never seen, an empty
store, no parse cache); with --keep DIR the catalog, store and parse cache in DIR are
reused when present (a restart). Prints one JSON object (the last line of stdout).
"""

import time

T_PROC = time.perf_counter()  # as early as possible: the start-up figure counts from here

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402


def rss_kib() -> int:
    """This process's resident memory."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def gen_catalog(root: Path, n: int) -> None:
    """The two bench commands and n generated Python commands, ten to a folder."""
    (root / "bench").mkdir(parents=True)
    true_sh = "#!/usr/bin/env bash\n# @describe Does nothing.\ntrue\n"
    (root / "bench" / "true.sh").write_text(true_sh)
    hi_py = '"""Says hi."""\n\n\ndef main() -> None:\n    print("hi")\n'
    (root / "bench" / "hi.py").write_text(hi_py)
    for i in range(n):
        d = root / f"gen{i // 10:04d}"
        d.mkdir(exist_ok=True)
        (d / f"c{i % 10:03d}.py").write_text(
            f'"""Generated command {i}."""\n\n\ndef main(arg: str = "") -> None:\n'
            f'    """Echo.\n\n    Args:\n        arg: Anything.\n    """\n'
            f'    print("g{i} " + arg)\n'
        )


def pct(xs: list[float]) -> dict[str, float]:
    """Count, min, median, p95 and max of latencies in seconds, as milliseconds."""
    xs = sorted(xs)
    return {
        "n": len(xs),
        "min_ms": xs[0] * 1e3,
        "med_ms": statistics.median(xs) * 1e3,
        "p95_ms": xs[int(0.95 * (len(xs) - 1))] * 1e3,
        "max_ms": xs[-1] * 1e3,
    }


async def main() -> None:
    """Run the phases and print their figures as one JSON line."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--gen", type=int, default=500)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--nsub", type=int, default=200)
    ap.add_argument("--phases", default="startup,pong,pongtp,subtrue,subtruetp,subpy,subpytp")
    ap.add_argument("--keep", type=Path, help="reuse the catalog, store and cache in this folder")
    a = ap.parse_args()
    phases = a.phases.split(",")
    work = a.keep or Path(tempfile.mkdtemp(prefix="opsroom-peer-"))
    catalog = work / "catalog"
    if not catalog.is_dir():
        gen_catalog(catalog, a.gen)
    out: dict[str, Any] = {"generated_commands": a.gen, "restart": a.keep is not None}
    t_imp = time.perf_counter()
    from opsroom.config import Settings
    from opsroom.testing import Bot

    out["import_ms"] = (time.perf_counter() - t_imp) * 1e3
    settings = Settings.model_validate(
        {
            "runner": {"concurrency": 1000, "per_user": 1000},
            "catalog": {"cache": str(work / "cache")},
        }
    )
    try:
        async with Bot.open(
            catalog_dir=str(catalog), store_url=f"sqlite:///{work}/store.db", settings=settings
        ) as bot:
            said = await bot.say("!version", as_="local:alice")
            assert "opsroom" in said.text.lower(), said.text
            out["startup_ms_from_process_start"] = (time.perf_counter() - T_PROC) * 1e3
            out["rss_kib_ready"] = rss_kib()

            async def one(cmd: str, expect: str) -> None:
                s = await bot.say(cmd, as_="local:alice")
                assert expect in s.text, (cmd, s.text[-300:])

            async def seq(cmd: str, n: int, expect: str) -> dict[str, float]:
                lat = []
                for _ in range(n):
                    t = time.perf_counter()
                    await one(cmd, expect)
                    lat.append(time.perf_counter() - t)
                return pct(lat)

            async def tp(cmd: str, n: int, expect: str) -> dict[str, float]:
                t = time.perf_counter()
                await asyncio.gather(*(one(cmd, expect) for _ in range(n)))
                w = time.perf_counter() - t
                return {"n": n, "wall_s": w, "per_s": n / w}

            if "pong" in phases:
                await seq("!version", 50, "opsroom")  # warm-up, as the peers do
                out["pong"] = await seq("!version", a.n, "opsroom")
            if "pongtp" in phases:
                out["pongtp"] = await tp("!version", a.n, "opsroom")
            if "subtrue" in phases:
                out["subtrue"] = await seq("!bench true", a.nsub, "succeeded")
            if "subtruetp" in phases:
                out["subtruetp"] = await tp("!bench true", a.nsub, "succeeded")
            if "subpy" in phases:
                out["subpy"] = await seq("!bench hi", a.nsub, "hi")
            if "subpytp" in phases:
                out["subpytp"] = await tp("!bench hi", a.nsub, "hi")
            out["rss_kib_end"] = rss_kib()
    finally:
        if a.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
