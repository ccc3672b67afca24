"""Relative dates and times chat users type instead of a calendar date.

Documented examples and schedules must not go stale: `+14d` is as valid next year as it is
today, where `2026-12-01` soon lies in the past. A value is resolved once, when the request
is bound, against an injected clock, and reaches the script as ISO 8601 like any other date.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

_OFFSET_RE = re.compile(r"([+-])(\d{1,4})([mhdw])", re.IGNORECASE)
_DAY_WORDS = {"today": 0, "tomorrow": 1, "yesterday": -1}
_UNIT = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}

RELATIVE_FORMS = "today, tomorrow, yesterday, now, +3d, -2w, +4h, +30m"


def resolve_relative(text: str, now: datetime) -> datetime | None:
    """The moment `text` names relative to `now`, or None when it is not a relative form.

    Day forms (`today`, `tomorrow`, `+14d`, `-2w`) name a calendar day: midnight, without a
    zone, like a plain `2024-05-01`. Time forms (`now`, `+4h`, `+30m`) name an instant and
    keep `now`'s zone, to the second.
    """
    word = text.strip().casefold()
    if word == "now":
        return now.replace(microsecond=0)
    if word in _DAY_WORDS:
        return _midnight(now) + timedelta(days=_DAY_WORDS[word])
    match = _OFFSET_RE.fullmatch(word)
    if match is None:
        return None
    sign, amount, unit = match.groups()
    delta = timedelta(**{_UNIT[unit.lower()]: int(amount)})
    if sign == "-":
        delta = -delta
    if unit.lower() in ("d", "w"):
        return _midnight(now) + delta
    return now.replace(microsecond=0) + delta


def _midnight(now: datetime) -> datetime:
    """The start of `now`'s calendar day, without a zone."""
    return datetime(now.year, now.month, now.day)
