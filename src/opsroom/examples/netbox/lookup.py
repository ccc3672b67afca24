"""Look up a device, IP address or site in NetBox.

Searches the NetBox inventory (simulated in this demo catalog) and answers with what it
knows: site, rack, role, primary IP, platform and status. Accepts a device name
(store-0042-fw01), an IPv4 address (10.100.42.1) or a site slug (store-0042).
"""

import hashlib
import ipaddress
import re
import sys

ROLES = {"fw": "firewall", "sw": "access-switch", "pos": "pos-terminal", "bo": "back-office",
         "ap": "wireless-ap", "pin": "payment-terminal"}


def main(query: str, limit: int = 10) -> list[dict[str, str]]:
    """Find devices in NetBox by name, IP address or site.

    Args:
        query: Device name, IPv4 address or site slug to look for.
        limit: Show at most this many devices (1-50).

    Examples:
        !netbox lookup store-0042-fw01
        !netbox lookup 10.100.42.1
        !netbox lookup store-0108 --limit 5
    """
    query = query.strip().lower()
    limit = max(1, min(int(limit), 50))
    try:
        addr = ipaddress.ip_address(query)
    except ValueError:
        addr = None
    if addr is not None:
        if addr.version != 4 or not str(addr).startswith("10.100."):
            print(f"No device has the IP address {addr}.")
            return []
        store = int(str(addr).split(".")[2])
        host = int(str(addr).split(".")[3])
        kind = {1: "fw", 2: "sw", 10: "bo"}.get(host, "pos")
        names = [f"store-{store:04d}-{kind}01"]
    else:
        m = re.fullmatch(r"(store-(\d{4}))(?:-([a-z]+)(\d{2}))?", query)
        if not m:
            print(f"error: '{query}' is not a device name, IP address or site slug", file=sys.stderr)
            raise SystemExit(2)
        site = m.group(1)
        if m.group(3):
            names = [query]
        else:
            names = [f"{site}-{k}01" for k in ("fw", "sw", "bo", "pin")]
            names += [f"{site}-pos{n:02d}" for n in range(1, 5)]
    rows = []
    for name in names[:limit]:
        site, kind = name[:10], re.sub(r"\d+$", "", name[11:])
        store = int(site[6:])
        n = int(hashlib.sha256(name.encode()).hexdigest()[:6], 16)
        last = {"fw": 1, "sw": 2, "bo": 10, "pin": 20}.get(kind, 30 + int(name[-2:]))
        rows.append(
            {
                "device": name,
                "site": site,
                "rack": f"{site}-comms" if kind in ("fw", "sw", "bo") else "shop floor",
                "role": ROLES.get(kind, "unknown"),
                "primary ip": f"10.100.{store % 256}.{last}/24",
                "platform": {"fw": "FortiOS 7.2", "sw": "Aruba CX 10.13", "bo": "Windows Server 2022"}
                .get(kind, "Toshiba TCx 7.4" if kind == "pos" else "Verifone V400m"),
                "status": "in repair" if n % 13 == 0 and kind == "pos" else "active",
            }
        )
    return rows


if __name__ == "__main__":
    for q in ("store-0042", "10.100.42.1", "store-0042-fw01"):
        print(main(q, limit=3))
