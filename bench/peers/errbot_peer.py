"""Errbot in-process through its Test backend (`errbot.backends.test.TestBot`, the class behind
its `testbot` pytest fixture): the same phases as opsroom_peer.py.

Phases:
  startup   import errbot + TestBot(...).start() until the fixture's own `!echo ready` reply,
            with the bench plugin plus G generated plugins of C commands each
  pong      sequential round trips: push `!pong`, pop the reply, N times
  pongtp    N `!pong` pushed at once, N replies popped
  sub*      the same for commands that run a child process and reply with its output

Run with the interpreter of a virtual environment that has errbot (and pytest, which its test
backend imports) installed:

    venv-errbot/bin/python errbot_peer.py --gen-plugins 50 --cmds-per-plugin 10 [--keep DIR]

With --keep DIR the generated plugins in DIR are reused when present (a restart: their
bytecode is cached); without it they are new. Prints one JSON object (the last line).
"""

import time

T_PROC = time.perf_counter()  # as early as possible: the start-up figure counts from here

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from typing import Any  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def rss_kib() -> int:
    """This process's resident memory."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def gen_plugins(root: str, n_plugins: int, cmds_per_plugin: int) -> None:
    """n_plugins Errbot plugins of cmds_per_plugin trivial commands each."""
    for p in range(n_plugins):
        d = os.path.join(root, f"gen{p:04d}")
        os.makedirs(d)
        with open(os.path.join(d, f"gen{p:04d}.plug"), "w") as f:
            f.write(
                "[Core]\n"
                f"Name = Gen{p:04d}\n"
                f"Module = gen{p:04d}\n"
                "\n[Documentation]\n"
                f"Description = generated plugin {p}\n"
                "\n[Python]\nVersion = 3\n"
            )
        lines = [
            "from errbot import BotPlugin, botcmd\n\n",
            f"class Gen{p:04d}(BotPlugin):\n",
            f'    """Generated plugin {p}."""\n',
        ]
        for c in range(cmds_per_plugin):
            lines.append(
                "\n    @botcmd\n"
                f"    def g{p:04d}_c{c:03d}(self, msg, args):\n"
                f'        """Generated command {c} of plugin {p}."""\n'
                f'        return "g{p}c{c} " + args\n'
            )
        with open(os.path.join(d, f"gen{p:04d}.py"), "w") as f:
            f.writelines(lines)


def percentiles(xs: list[float]) -> dict[str, float]:
    """Count, min, median, p95 and max of latencies in seconds, as milliseconds."""
    xs = sorted(xs)
    return {
        "n": len(xs),
        "min_ms": xs[0] * 1e3,
        "med_ms": statistics.median(xs) * 1e3,
        "p95_ms": xs[int(0.95 * (len(xs) - 1))] * 1e3,
        "max_ms": xs[-1] * 1e3,
    }


def seq_latency(tb: Any, cmd: str, n: int, expect: str) -> dict[str, float]:
    """One message in flight at a time."""
    lat = []
    for _ in range(n):
        t = time.perf_counter()
        tb.push_message(cmd)
        r = tb.pop_message(timeout=30)
        lat.append(time.perf_counter() - t)
        assert expect in r, (cmd, r)
    return percentiles(lat)


def throughput(tb: Any, cmd: str, n: int, expect: str) -> dict[str, float]:
    """n messages at once; the wall time until every reply is in."""
    t = time.perf_counter()
    for _ in range(n):
        tb.push_message(cmd)
    for _ in range(n):
        r = tb.pop_message(timeout=60)
        assert expect in r, (cmd, r)
    wall = time.perf_counter() - t
    return {"n": n, "wall_s": wall, "per_s": n / wall}


def main() -> None:
    """Run the phases and print their figures as one JSON line."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--gen-plugins", type=int, default=0)
    ap.add_argument("--cmds-per-plugin", type=int, default=10)
    ap.add_argument("--n", type=int, default=2000, help="pong messages")
    ap.add_argument("--nsub", type=int, default=200, help="subprocess-command messages")
    ap.add_argument("--phases", default="startup,pong,pongtp,subtrue,subtruetp,subpy,subpytp")
    ap.add_argument("--loglevel", default="WARNING")
    ap.add_argument("--pool", type=int, default=10, help="BOT_ASYNC_POOLSIZE (errbot default 10)")
    ap.add_argument("--keep", help="reuse the generated plugins in this folder")
    a = ap.parse_args()
    phases = a.phases.split(",")

    work = a.keep or tempfile.mkdtemp(prefix="errbot-peer-")
    plugdir = os.path.join(work, "plugins")
    if not os.path.isdir(plugdir):
        shutil.copytree(os.path.join(HERE, "errbot_plugin"), os.path.join(plugdir, "peerbench"))
        gen_plugins(plugdir, a.gen_plugins, a.cmds_per_plugin)
    out: dict[str, Any] = {
        "gen_plugins": a.gen_plugins,
        "cmds_per_plugin": a.cmds_per_plugin,
        "generated_commands": a.gen_plugins * a.cmds_per_plugin,
        "restart": a.keep is not None,
    }

    t_import = time.perf_counter()
    from errbot.backends.test import TestBot  # type: ignore[import-not-found]

    out["import_s"] = time.perf_counter() - t_import

    t_start = time.perf_counter()
    tb = TestBot(
        extra_plugin_dir=plugdir,
        loglevel=getattr(logging, a.loglevel),
        extra_config={
            "BOT_ASYNC_POOLSIZE": a.pool,
            # No network here: the version checker would only fail.
            "CORE_PLUGINS": (
                "ACLs",
                "Backup",
                "ChatRoom",
                "CommandNotFoundFilter",
                "Flows",
                "Health",
                "Help",
                "Plugins",
                "TextCmds",
                "Utils",
                "Webserver",
            ),
        },
    )
    tb.start(timeout=60)
    out["start_to_ready_s"] = time.perf_counter() - t_start
    out["process_to_ready_s"] = time.perf_counter() - T_PROC
    out["rss_kib_ready"] = rss_kib()
    out["n_commands_registered"] = len(tb.bot.commands)

    if "pong" in phases:
        seq_latency(tb, "!pong", 50, "pong")  # warm-up
        out["pong_seq"] = seq_latency(tb, "!pong", a.n, "pong")
    if "pongtp" in phases:
        out["pong_tp"] = throughput(tb, "!pong", a.n, "pong")
    if "subtrue" in phases:
        out["subtrue_seq"] = seq_latency(tb, "!subtrue", a.nsub, "rc=0")
    if "subtruetp" in phases:
        out["subtrue_tp"] = throughput(tb, "!subtrue", a.nsub, "rc=0")
    if "subpy" in phases:
        out["subpy_seq"] = seq_latency(tb, "!subpy", a.nsub, "hi")
    if "subpytp" in phases:
        out["subpy_tp"] = throughput(tb, "!subpy", a.nsub, "hi")
    out["rss_kib_end"] = rss_kib()
    out["maxrss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tb.stop()
    if a.keep is None:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out))
    sys.stdout.flush()
    os._exit(0)  # skip the thread pool's joins at exit


if __name__ == "__main__":
    main()
