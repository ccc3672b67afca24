# opsroom: approval = "storage-leads"
# opsroom: timeout = "10m"
# opsroom: concurrency = 1
"""Retire an emptied storage array: take it out of service after its volumes moved away.

Checks that the array holds no volumes any more, removes it from monitoring and backups,
revokes its cluster peering and schedules the power-off. Destructive, so it waits until
another member of the storage-leads role approves it (`!approve <job>` or the Approve
button; on embedded defaults any other web or local account may). Simulated in this demo
catalog: nothing is touched and it takes about two seconds.
"""

import time
from typing import Literal


class _PlainEvents:
    """Stand-in for opsroom.script when the script runs outside opsroom."""

    @staticmethod
    def progress(percent: float, message: str = "") -> None:
        print(f"progress {percent:.0f}% {message}".rstrip())

    @staticmethod
    def status(text: str, level: str = "info") -> None:
        print(f"[{level}] {text}")


def main(
    array: Literal["netapp-fas01", "netapp-fas02", "netapp-legacy"],
    ticket: str = "CHG-0000",
) -> list[dict[str, str]]:
    """Take an emptied storage array out of service.

    Args:
        array: The array to retire (its volumes must have been migrated away).
        ticket: The change ticket that allows it.

    Examples:
        !storage decommission netapp-legacy --ticket CHG-4711
    """
    try:
        from opsroom import script as ops
    except ImportError:  # run by hand, outside opsroom
        ops = _PlainEvents()

    ops.status(f"Decommissioning {array} under {ticket}")
    steps = [
        ("volumes", "none left (last one moved by storage migrate)"),
        ("monitoring", f"{array} removed from 3 dashboards, 14 alert rules"),
        ("backups", "2 SnapVault relationships released"),
        ("peering", f"cluster peer {array} <-> netapp-a400-01 revoked"),
        ("power", "power-off scheduled for the next maintenance window"),
    ]
    rows = []
    for n, (step, detail) in enumerate(steps):
        ops.progress(n * 100 / len(steps), f"{step}: checking")
        time.sleep(0.3)
        print(f"{step}: {detail}")
        rows.append({"step": step, "result": "done", "detail": detail})
    ops.progress(100, "done")
    ops.status(f"{array} is out of service", "success")
    return rows


if __name__ == "__main__":
    for row in main("netapp-legacy"):
        print(row)
