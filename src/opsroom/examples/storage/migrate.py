# opsroom: timeout = "2h"
# opsroom: concurrency = 1
# opsroom: aliases = ["migrate"]
# opsroom: dry_run = true
"""Migrate the volumes of a storage array to a new array, one volume at a time.

Moves every volume of a NetApp SVM to the target array: snapshot, baseline copy,
incremental sync, cut-over of the CIFS shares and NFS exports, then verification. Reports
progress as it goes, so a long migration can be followed from a phone. Only one migration
runs at a time. Simulated in this demo catalog: by default 8 volumes at 3 s each (about
25 s); use --seconds-per-volume 0.2 for a quick run. Supports --dry-run.
"""

import os
import time
from typing import Literal


class _PlainEvents:
    """Stand-in for opsroom.script when the script runs outside opsroom."""

    @staticmethod
    def progress(percent: float, message: str = "") -> None:
        print(f"progress {percent:.0f}% {message}".rstrip())

    @staticmethod
    def table(rows: list[dict[str, object]]) -> None:
        for row in rows:
            print("  " + "  ".join(f"{k}={v}" for k, v in row.items()))

    @staticmethod
    def status(text: str, level: str = "info") -> None:
        print(f"[{level}] {text}")


def main(
    source: Literal["netapp-fas01", "netapp-fas02", "netapp-legacy"],
    target: Literal["netapp-a400-01", "netapp-a400-02"] = "netapp-a400-01",
    volumes: int = 8,
    seconds_per_volume: float = 3.0,
    svm: str = "svm_retail",
) -> list[dict[str, str]]:
    """Migrate all volumes of an SVM from one array to another.

    Args:
        source: Array to migrate from.
        target: Array to migrate to.
        volumes: How many volumes to migrate (1-64); the demo invents their names.
        seconds_per_volume: Simulated copy time per volume, in seconds (0-60).
        svm: Storage virtual machine whose volumes move.

    Examples:
        !storage migrate netapp-fas01
        !migrate netapp-legacy --target netapp-a400-02 --volumes 3 --seconds-per-volume 0.2
        !storage migrate netapp-fas02 --dry-run
    """
    try:
        from opsroom import script as ops
    except ImportError:  # run by hand, outside opsroom
        ops = _PlainEvents()

    volumes = int(volumes)
    seconds_per_volume = float(seconds_per_volume)
    if not 1 <= volumes <= 64:
        print(f"error: volumes must be between 1 and 64, got {volumes}")
        raise SystemExit(2)
    if not 0 <= seconds_per_volume <= 60:
        print(f"error: seconds-per-volume must be between 0 and 60, got {seconds_per_volume}")
        raise SystemExit(2)
    if source == target:
        print("error: source and target are the same array")
        raise SystemExit(2)

    dry_run = os.environ.get("OPSROOM_DRY_RUN", "0") == "1"
    names = [f"vol_{kind}{n:02d}" for n, kind in enumerate(_kinds(volumes), start=1)]
    sizes = [40 + (n * 137) % 900 for n in range(1, volumes + 1)]

    ops.status(f"Migrating {volumes} volume(s) of {svm}: {source} -> {target}"
               + (" (dry run)" if dry_run else ""))
    print(f"Pre-checks: SnapMirror licence on {target} ok, "
          f"{sum(sizes) * 2} GiB free on aggr1 ok, peering {source}<->{target} ok")

    steps = ("snapshot", "baseline copy", "incremental sync", "cut-over", "verify")
    result = []
    for i, (name, size) in enumerate(zip(names, sizes, strict=True), start=1):
        for s, step in enumerate(steps):
            pct = ((i - 1) * len(steps) + s) * 100 / (volumes * len(steps))
            ops.progress(round(pct), f"volume {i}/{volumes}: {step} {name}")
            if not dry_run:
                # The copy takes most of the time, as it does on a real array.
                share = 0.6 if step == "baseline copy" else 0.1
                time.sleep(seconds_per_volume * share)
        verb = "would move" if dry_run else "moved"
        print(f"[{i}/{volumes}] {name}: {verb} {size} GiB, shares re-pointed to {target}")
        result.append({
            "volume": name,
            "size": f"{size} GiB",
            "from": source,
            "to": target,
            "state": "planned" if dry_run else "migrated",
        })
    ops.progress(100, "done")
    ops.status("Migration complete" if not dry_run else "Dry run complete, nothing changed")
    return result


def _kinds(count: int) -> list[str]:
    """Volume name prefixes, as a retail SVM tends to have them."""
    base = ["home", "shares", "pos_backup", "erp", "scans", "logs", "profiles", "archive"]
    return [base[n % len(base)] for n in range(count)]


if __name__ == "__main__":
    for row in main("netapp-fas01", volumes=3, seconds_per_volume=0.1):
        print(row)
