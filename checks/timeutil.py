"""Pure time parsing: CloudTrail timestamps, user-given durations and instants."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

MAX_LOOKBACK = timedelta(days=90)  # CloudTrail event history keeps 90 days

_DURATION = re.compile(r"^(\d{1,6})([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}

# CloudTrail writes `2026-11-29T21:47:48Z`; exports and test corpora also carry
# `2022-09-27 17:09:18` and `2023-01-03 01:52:07.000000000` (nanoseconds).
_EVENT_TIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(Z|[+-]\d{2}:?\d{2})?$",
    re.ASCII,
)
# IAM's responseElements.accessKey.createDate is `Jan 8, 2020 8:43:06 PM` (a regex and a month
# table: strptime was a fifth of the parse time).
_CREATE_DATE = re.compile(
    r"^([A-Z][a-z]{2}) (\d{1,2}), (\d{4}),? (\d{1,2}):(\d{2}):(\d{2}) ([AP]M)$", re.ASCII
)
_MONTHS = {
    name: index
    for index, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}


def parse_duration(text: str) -> timedelta:
    """`90m`, `24h`, `7d`, `2w`; at most 90 days. Raises ValueError naming the problem."""
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError(f"bad duration {text!r}: use <n><m|h|d|w>, e.g. 90m, 24h, 7d, 2w")
    amount, unit = int(match.group(1)), match.group(2)
    value = timedelta(**{_UNITS[unit]: amount})
    if value <= timedelta(0):
        raise ValueError(f"bad duration {text!r}: must be more than zero")
    if value > MAX_LOOKBACK:
        raise ValueError(f"bad duration {text!r}: at most 90d (CloudTrail's event history)")
    return value


def parse_instant(text: str) -> datetime:
    """ISO 8601 date or date-time; UTC unless it carries an offset."""
    raw = text.strip()
    try:
        if len(raw) == 10:
            d = date.fromisoformat(raw)
            return datetime(d.year, d.month, d.day, tzinfo=UTC)
        value = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"bad time {text!r}: use an ISO 8601 date or date-time, e.g. 2026-11-29T14:00Z"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is before datetime's first instant
        raise ValueError(f"bad time {text!r}: outside the range of dates") from None


def parse_event_time(text: str) -> datetime:
    """A CloudTrail `eventTime` in any of the shapes seen in the wild, as aware UTC."""
    match = _EVENT_TIME.match(text.strip())
    if not match:
        raise ValueError(f"unrecognised event time {text!r}")
    year, month, day, hour, minute, second, frac, zone = match.groups()
    micro = int((frac or "0")[:6].ljust(6, "0"))
    try:
        value = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tzinfo=UTC
        )
        if zone and zone != "Z":
            sign = 1 if zone[0] == "+" else -1
            digits = zone[1:].replace(":", "")
            offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
            value = value - sign * offset
    except (ValueError, OverflowError) as exc:  # 2025-02-30, or beyond datetime's range
        raise ValueError(f"impossible event time {text!r}: {exc}") from None
    return value


def parse_create_date(text: str) -> datetime | None:
    """IAM's createDate, either ISO or `Jan 8, 2020 8:43:06 PM`; None when unreadable."""
    match = _CREATE_DATE.match(text.strip())
    if match is None:
        try:
            return parse_event_time(text)
        except ValueError:
            return None
    month_name, day, year, hour, minute, second, half = match.groups()
    month = _MONTHS.get(month_name)
    if month is None or not 1 <= int(hour) <= 12:
        return None
    hour24 = int(hour) % 12 + (12 if half == "PM" else 0)
    try:
        return datetime(int(year), month, int(day), hour24, int(minute), int(second), tzinfo=UTC)
    except ValueError:
        return None


def isoformat_z(value: datetime) -> str:
    """`2026-11-29T21:47:48Z`: seconds precision, UTC, the CONTRACT's format."""
    v = value.astimezone(UTC)
    # Formatted by hand: strftime's %Y drops leading zeros for years before 1000 on Linux.
    return f"{v.year:04d}-{v.month:02d}-{v.day:02d}T{v.hour:02d}:{v.minute:02d}:{v.second:02d}Z"
