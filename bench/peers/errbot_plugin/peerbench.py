"""Errbot's side of the peer benchmark: the commands opsroom's `!version`, `!bench true` and
`!bench hi` stand beside (bench/peers/errbot_peer.py loads this folder as a plugin)."""

import os
import subprocess
import sys

from errbot import BotPlugin, botcmd  # type: ignore[import-not-found]

# The real interpreter: a `python3` on PATH may be a slow shell-script shim.
PY = os.path.join(sys.base_prefix, "bin", "python3")


class PeerBench(BotPlugin):  # type: ignore[misc]
    """Benchmark commands."""

    @botcmd  # type: ignore[untyped-decorator]
    def pong(self, msg: object, args: str) -> str:
        """Reply pong."""
        return "pong"

    @botcmd  # type: ignore[untyped-decorator]
    def subtrue(self, msg: object, args: str) -> str:
        """Run /bin/true and reply with its exit status."""
        r = subprocess.run(["/bin/true"], check=False)
        return f"rc={r.returncode}"

    @botcmd  # type: ignore[untyped-decorator]
    def subpy(self, msg: object, args: str) -> str:
        """Run python3 -c print('hi') and reply with its output."""
        r = subprocess.run([PY, "-c", "print('hi')"], capture_output=True, text=True, check=False)
        return r.stdout.strip()
