# opsroom: dry_run = true
# opsroom: timeout = "10m"
"""Open a new retail store: register it and prepare its systems for day one.

Runs the store-opening checklist the roll-out team used to do by hand: register the store
in the ERP and NetBox, allocate its network ranges, stage the tills and the back-office
server, create the store's mailbox and AD group, and schedule the opening-day health check.
Supports --dry-run, which prints the checklist without changing anything.
"""

import os
import sys
from datetime import date, datetime, timedelta
from typing import Literal


def main(
    store: int,
    city: str,
    region: Literal["north", "south", "east", "west", "central"],
    opening_date: datetime,
    pos_count: int = 4,
    manager: str = "",
) -> None:
    """Register a new store and stage its systems.

    Args:
        store: New store number, 1-9999; must not be in use yet.
        city: City the store is in, as it should appear in the ERP.
        region: Sales region the store reports to.
        opening_date: Opening day: a date (YYYY-MM-DD) or a relative one (tomorrow, +14d,
            +6w); must not be in the past.
        pos_count: Number of tills (POS terminals) to stage, 1-20.
        manager: Store manager's account name, added to the store's AD group.

    Examples:
        !store open 512 Leeds north +14d
        !store open 513 "Milton Keynes" central +6w --pos-count 6 --dry-run
    """
    dry_run = os.environ.get("OPSROOM_DRY_RUN", "0") == "1"
    store = int(store)
    pos_count = int(pos_count)
    when = opening_date if isinstance(opening_date, datetime) else _parse_date(str(opening_date))

    problems = []
    if not 1 <= store <= 9999:
        problems.append(f"store must be between 1 and 9999, got {store}")
    if store in (1, 13, 42, 108, 404):
        problems.append(f"store {store} already exists (store-{store:04d})")
    if not 1 <= pos_count <= 20:
        problems.append(f"pos-count must be between 1 and 20, got {pos_count}")
    if when.date() < date.today():
        problems.append(f"opening date {when.date()} is in the past")
    if problems:
        for p in problems:
            print(f"error: {p}", file=sys.stderr)
        raise SystemExit(2)

    site = f"store-{store:04d}"
    third = store % 250 + 1
    mode = "DRY RUN - nothing will be changed" if dry_run else "applying"
    print(f"Opening {site} in {city} ({region}), opening day {when:%A %d %B %Y} [{mode}]")

    steps = [
        ("ERP", f"register {site} '{city}' in region {region}"),
        ("NetBox", f"create site {site}, allocate 10.{100 + store // 250}.{third}.0/24"),
        ("Firewall", f"stage {site}-fw01 from template retail-branch-v7"),
        ("POS", f"stage {pos_count} tills {site}-pos01..{pos_count:02d}"),
        ("Back office", f"image {site}-bo01 with retail-bo-2026.10"),
        ("Active Directory", f"create group GG-{site}-Staff" + (f", add {manager}" if manager else "")),
        ("Exchange", f"create shared mailbox {site}@retail.example"),
        ("Monitoring", f"schedule health check for {when:%Y-%m-%d} 07:00"),
    ]
    for n, (system, action) in enumerate(steps, start=1):
        verb = "would" if dry_run else "done:"
        print(f"  [{n}/{len(steps)}] {system}: {verb} {action}")
    print("Dry run complete." if dry_run else f"{site} is ready for opening day.")


def _parse_date(text: str) -> datetime:
    """Accept the ISO forms chat users type: 2026-12-01 or 2026-12-01T08:00."""
    text = text.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    return datetime.fromisoformat(text)


if __name__ == "__main__":
    main(512, "Leeds", "north", (date.today() + timedelta(days=14)).isoformat())
