"""`opsroom serve` readiness: start to `/healthz` 200 on the example catalog, as a new user.

Each run starts the console script in an empty folder (a fresh SQLite store, the first
admin account created) on a port it picks itself, polls `/healthz` every 10 ms and stops the server
with SIGTERM. The budget is the issue's: ready within 2 s.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

from bench_startup import console_script
from figures import Figure, median

BUDGET_S = 2.0


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as r:  # noqa: S310 - a loopback URL
            return bool(r.status == 200)
    except OSError:
        return False


def start_serve(folder: str, env: dict[str, str], *args: str) -> tuple[subprocess.Popen[str], str]:
    """Start `opsroom serve` on a port it picks itself; the process and its base URL.

    Port 0: the server binds first and announces the port it got, so no other process can
    take the port between a probe and the bind.
    """
    proc = subprocess.Popen(
        [*console_script(), "serve", "--listen", "127.0.0.1:0", *args],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if m := re.search(r"serving on (http://\S+)", line):
            return proc, m.group(1)
    proc.wait(timeout=60)
    raise RuntimeError(f"opsroom serve exited with {proc.returncode} before serving")


def time_ready() -> float:
    """Seconds from starting `opsroom serve` in an empty folder to `/healthz` 200."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSROOM_")}
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        proc, base = start_serve(folder, env)
        url = f"{base}/healthz"
        try:
            while not _ready(url):
                if proc.poll() is not None:
                    raise RuntimeError(f"opsroom serve exited with {proc.returncode}")
                if time.perf_counter() - start > 30:
                    raise RuntimeError("opsroom serve was not ready within 30 s")
                time.sleep(0.01)
            return time.perf_counter() - start
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
            if proc.stdout is not None:
                proc.stdout.close()


def run(quick: bool = False) -> list[Figure]:
    """Median readiness over a few cold starts."""
    samples = [time_ready() for _ in range(2 if quick else 5)]
    note = f"min {min(samples):.2f} / max {max(samples):.2f} s over {len(samples)} cold starts"
    return [
        Figure("`opsroom serve` ready (healthz 200), median", median(samples), "s", BUDGET_S, note)
    ]


if __name__ == "__main__":
    for figure in run(quick="--quick" in sys.argv):
        print(f"{figure.name}: {figure.shown} [{figure.verdict}] {figure.note}")
