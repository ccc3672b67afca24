"""Show the health of one retail store: tills, payment terminal, back office and network.

Asks the store's systems for their state and answers with one row per device. The data is
simulated for the demo catalog, but stable per store number, so the same store always
looks the same (store 13 always has a till offline, store 404 has lost its WAN link).
"""

import hashlib
import sys


def _seed(store: int, device: str) -> int:
    """A stable pseudo-random number for one device of one store."""
    digest = hashlib.sha256(f"{store}:{device}".encode()).hexdigest()
    return int(digest[:8], 16)


def main(store: int, summary: bool = False) -> list[dict[str, str]]:
    """Report the state of every system in a store.

    Args:
        store: Store number, 1-9999 (printed on the store's door sign, e.g. 42).
        summary: One line for all tills instead of one row per till.

    Examples:
        !store status 42
        !store status 404 --summary
    """
    store = int(store)
    if not 1 <= store <= 9999:
        print(f"error: store must be between 1 and 9999, got {store}", file=sys.stderr)
        raise SystemExit(2)

    site = f"store-{store:04d}"
    rows: list[dict[str, str]] = []
    till_count = 3 + _seed(store, "tills") % 4
    till_rows: list[dict[str, str]] = []
    for n in range(1, till_count + 1):
        offline = (store == 13 and n == 2) or _seed(store, f"till{n}") % 23 == 0
        till_rows.append(
            {
                "system": f"till {n}",
                "host": f"{site}-pos{n:02d}",
                "state": "offline" if offline else "ok",
                "detail": "no heartbeat for 14 min" if offline else "POS 7.4.2, drawer closed",
            }
        )
    if summary:
        up = sum(1 for r in till_rows if r["state"] == "ok")
        rows.append(
            {
                "system": "tills",
                "host": f"{site}-pos01..{till_count:02d}",
                "state": "ok" if up == till_count else "warning",
                "detail": f"{up}/{till_count} tills reporting",
            }
        )
    else:
        rows.extend(till_rows)

    batch = 40 + _seed(store, "pay") % 300
    rows.append(
        {
            "system": "payment terminal",
            "host": f"{site}-pin01",
            "state": "ok",
            "detail": f"acquirer reachable, last batch {batch} txns",
        }
    )
    disk = 35 + _seed(store, "bo") % 60
    rows.append(
        {
            "system": "back-office server",
            "host": f"{site}-bo01",
            "state": "warning" if disk >= 85 else "ok",
            "detail": f"D: {disk}% used, backup 02:10 ok",
        }
    )
    wan_down = store == 404
    latency = 8 + _seed(store, "wan") % 40
    rows.append(
        {
            "system": "network",
            "host": f"{site}-fw01",
            "state": "degraded" if wan_down else "ok",
            "detail": "primary WAN down, on 4G backup" if wan_down else f"WAN up, {latency} ms to hq",
        }
    )
    return rows


if __name__ == "__main__":
    for row in main(int(sys.argv[1]) if len(sys.argv) > 1 else 42):
        print(row)
