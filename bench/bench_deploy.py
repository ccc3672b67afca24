"""Deploying the catalog from git (SPEC §10): how soon a push is live.

1. Incremental: a generated catalog of 10,000 scripts (500 with `--quick`) is committed to
   a bare repository and served by the real deployer (`opsroom.deploy.Deployer`); then a
   commit touching one script is pushed and `update()` fetches, checks and swaps it. The
   figure is the time from the end of the fetch to the new version being live (check out
   in the spare work tree, re-parse the touched file, diff, registry, swap), median of 3
   commits, each touching another file. It also confirms that exactly one file was parsed.
2. Push → live through `opsroom serve`: a push, then either the signed webhook or nothing
   (polling every 5 s); the figure is the time from the end of `git push` until `/healthz`
   reports the pushed commit (deployed and announced). Median of 3 pushes (1 with --quick).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench_serve import start_serve
from figures import Figure, median
from generate import generate_catalog

BUDGET_INCREMENTAL_S = 1.0
BUDGET_WEBHOOK_S = 5.0
BUDGET_POLL_S = 15.0
POLL_INTERVAL = "5s"
SECRET = "bench-webhook-secret"  # noqa: S105 - a throwaway for a local server


def _git(*args: str, cwd: Path) -> str:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("GIT_")},
        "GIT_AUTHOR_NAME": "Bench",
        "GIT_AUTHOR_EMAIL": "bench@example.org",
        "GIT_COMMITTER_NAME": "Bench",
        "GIT_COMMITTER_EMAIL": "bench@example.org",
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"git {args[0]} failed: {done.stderr.strip()}")
    return done.stdout


def _repository(root: Path, n: int) -> tuple[Path, Path]:
    """A bare repository holding `n` generated scripts on main, and the clone pushing to it."""
    clone = root / "scripts"
    if n:
        generate_catalog(clone, n, seed=n)
    else:
        clone.mkdir(parents=True)
        (clone / "hello.sh").write_text("#!/bin/sh\n# @describe Hello.\necho hello\n")
    _git("init", "-q", "-b", "main", cwd=clone)
    _git("add", "-A", cwd=clone)
    _git("commit", "-q", "-m", "catalog", cwd=clone)
    bare = root / "scripts.git"
    _git("clone", "-q", "--bare", str(clone), str(bare), cwd=root)
    _git("remote", "add", "origin", str(bare), cwd=clone)
    return bare, clone


def _touch_one(clone: Path, i: int) -> str:
    """Change one script (its help text), commit and push; the new commit."""
    scripts = sorted(p for p in clone.rglob("*.py") if ".git" not in p.parts)
    script = scripts[(i * 7919) % len(scripts)]
    text = script.read_text(encoding="utf-8")
    script.write_text(text.replace('"""', f'"""Changed {i}. ', 1), encoding="utf-8")
    _git("commit", "-q", "-am", f"change {script.name}", cwd=clone)
    _git("push", "-q", "origin", "HEAD:main", cwd=clone)
    return _git("rev-parse", "HEAD", cwd=clone).strip()


async def _incremental(n: int, commits: int) -> tuple[list[float], list[float], list[int]]:
    from opsroom.config import Settings
    from opsroom.deploy import Deployer

    with tempfile.TemporaryDirectory(prefix="opsroom-bench-deploy-") as tmp:
        root = Path(tmp)
        bare, clone = _repository(root, n)
        settings = Settings.model_validate(
            {"catalog": {"git": bare.as_uri(), "poll_interval": "0"}}
        )
        work = root / "work"
        work.mkdir()
        deployer = await Deployer.start(
            settings,
            catalog_dir=None,
            owner="bench:1:boot:1",
            owner_alive=lambda owner: True,
            workdir=work,
        )
        await deployer.warm()  # as `opsroom serve` does once it has started
        applied, fetches, parsed = [], [], []
        try:
            for i in range(commits):
                await deployer.idle()  # commits come seconds apart: the last one is put away
                sha = _touch_one(clone, i)
                report = await deployer.update("bench")
                if report.outcome != "deployed" or deployer.live.current.commit != sha:
                    raise RuntimeError(f"commit {sha[:8]} did not go live: {report.outcome}")
                assert report.apply_s is not None
                assert report.fetch_s is not None
                assert deployer.git is not None
                applied.append(report.apply_s)
                fetches.append(report.fetch_s)
                parsed.append(len(deployer.git.cache.parsed))
        finally:
            await deployer.close()
        return applied, fetches, parsed


def _healthz(url: str) -> dict[str, object] | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:  # noqa: S310 - a loopback URL
            data: dict[str, object] = json.loads(r.read())
            return data
    except OSError:
        return None


def _webhook(base: str) -> None:
    body = json.dumps({"ref": "refs/heads/main"}).encode()
    sig = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    request = urllib.request.Request(  # noqa: S310 - a loopback URL
        f"{base}/hooks/git",
        data=body,
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": sig},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as r:  # noqa: S310
        if r.status != 202:
            raise RuntimeError(f"the webhook got {r.status}")


def _push_to_live(webhook: bool, pushes: int) -> list[float]:
    """Seconds from the end of `git push` to the commit serving, through `opsroom serve`."""
    with tempfile.TemporaryDirectory(prefix="opsroom-bench-push-") as tmp:
        root = Path(tmp)
        bare, clone = _repository(root, 0)
        work = root / "work"
        work.mkdir()
        poll = '"0"' if webhook else f'"{POLL_INTERVAL}"'
        (work / "opsroom.toml").write_text(
            f'[catalog]\ngit = "{bare.as_uri()}"\npoll_interval = {poll}\n'
            'webhook_secret = "env:BENCH_HOOK_SECRET"\n',
            encoding="utf-8",
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPSROOM_")}
        env["BENCH_HOOK_SECRET"] = SECRET
        proc, base = start_serve(str(work), env)
        samples = []
        try:
            deadline = time.monotonic() + 60
            while _healthz(f"{base}/healthz") is None:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("opsroom serve did not start")
                time.sleep(0.05)
            for i in range(pushes):
                (clone / f"step_{i}.sh").write_text(f"#!/bin/sh\n# @describe Step {i}.\necho {i}\n")
                _git("add", "-A", cwd=clone)
                _git("commit", "-q", "-m", f"step {i}", cwd=clone)
                _git("push", "-q", "origin", "HEAD:main", cwd=clone)
                sha = _git("rev-parse", "HEAD", cwd=clone).strip()
                pushed = time.perf_counter()
                if webhook:
                    _webhook(base)
                while True:
                    health = _healthz(f"{base}/healthz") or {}
                    deploy = health.get("catalog_deploy")
                    if isinstance(deploy, dict) and deploy.get("commit") == sha:
                        break
                    if time.perf_counter() - pushed > 120:
                        raise RuntimeError(f"commit {sha[:8]} was not live within 120 s")
                    time.sleep(0.02)
                samples.append(time.perf_counter() - pushed)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
            if proc.stdout is not None:
                proc.stdout.close()
        return samples


def run(quick: bool = False) -> list[Figure]:
    """Incremental deploy at 10,000 scripts (500 quick), then push → live both ways."""
    if shutil.which("git") is None:
        raise RuntimeError("git is not installed")
    n = 500 if quick else 10_000
    commits = 1 if quick else 3
    applied, fetches, parsed = asyncio.run(_incremental(n, commits))
    out = [
        Figure(
            f"git deploy, 1 file of {n:,} scripts: fetched → live, median",
            median(applied),
            "s",
            BUDGET_INCREMENTAL_S if n >= 10_000 else None,
            f"files parsed per commit {parsed}; fetch {median(fetches):.2f} s "
            f"(local bare repository); {commits} commit(s)",
        )
    ]
    pushes = 1 if quick else 3
    hooked = _push_to_live(True, pushes)
    out.append(
        Figure(
            "git push → live with the webhook, median",
            median(hooked),
            "s",
            BUDGET_WEBHOOK_S,
            f"max {max(hooked):.2f} s over {pushes} push(es), poll_interval = 0",
        )
    )
    polled = _push_to_live(False, pushes)
    out.append(
        Figure(
            f"git push → live by polling ({POLL_INTERVAL}), median",
            median(polled),
            "s",
            BUDGET_POLL_S,
            f"max {max(polled):.2f} s over {pushes} push(es), no webhook",
        )
    )
    return out


if __name__ == "__main__":
    for figure in run(quick="--quick" in sys.argv):
        print(f"{figure.name}: {figure.shown} [{figure.verdict}] {figure.note}")
