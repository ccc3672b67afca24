"""Show the last backups of the SQL Server databases on an instance.

Reads the backup history (msdb.dbo.backupset, simulated in this demo catalog) and answers
with one row per database: last full, last log backup, size and whether it is within the
recovery point objective. Use it before a change window, or when the backup alert fires.
"""

import hashlib
from datetime import datetime, timedelta
from typing import Literal

DATABASES = {
    "sql-erp01": ["ERP_PROD", "ERP_REPORTING", "SSISDB"],
    "sql-pos01": ["POS_CENTRAL", "POS_PRICES", "POS_JOURNAL"],
    "sql-hr01": ["HR_PAYROLL", "HR_TIME"],
    "sql-dw01": ["DW_SALES", "DW_STAGING", "DW_MARTS", "SSISDB"],
}


def main(
    instance: Literal["sql-erp01", "sql-pos01", "sql-hr01", "sql-dw01"],
    rpo_minutes: int = 60,
    only_problems: bool = False,
) -> list[dict[str, str]]:
    """List the last full and log backup of every database on an instance.

    Args:
        instance: SQL Server instance to inspect.
        rpo_minutes: Recovery point objective: a log backup older than this is flagged.
        only_problems: Show only databases outside the objective.

    Examples:
        !sql backup-status sql-erp01
        !sql backup-status sql-dw01 --rpo-minutes 15 --only-problems
    """
    rpo_minutes = int(rpo_minutes)
    now = datetime.now().replace(second=0, microsecond=0)
    rows = []
    for db in DATABASES[instance]:
        n = int(hashlib.sha256(f"{instance}/{db}".encode()).hexdigest()[:8], 16)
        full = now.replace(hour=1, minute=n % 50) - timedelta(days=n % 2)
        log_age = 5 + n % 30 if db != "DW_STAGING" else 26 * 60
        ok = log_age <= rpo_minutes
        if only_problems and ok:
            continue
        rows.append(
            {
                "database": db,
                "last full": f"{full:%Y-%m-%d %H:%M}",
                "last log": f"{log_age} min ago" if log_age < 120 else f"{log_age // 60} h ago",
                "size": f"{(n % 900 + 20) / 10:.1f} GB",
                "rpo": "ok" if ok else "MISSED",
            }
        )
    if not rows:
        print(f"All databases on {instance} are within {rpo_minutes} min.")
    return rows


if __name__ == "__main__":
    for r in main("sql-dw01"):
        print(r)
