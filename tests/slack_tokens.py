"""The one piece of Slack control syntax keyhunt writes itself: a date token.

`<!date^EPOCH^{date_short_pretty} {time}|2026-12-07 04:34 UTC>` shows each reader their own
time. Hostile-text tests check that no `<!`, `<@`, `<#` or link ever reaches Slack; they take
out exactly this shape first (digits, format words in braces, a UTC fallback: nothing a
CloudTrail record could put there survives the pattern).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

DATE_TOKEN = re.compile(
    r"<!date\^\d{1,12}\^\{[a-z_]+\}(?: \{[a-z_]+\})*\|\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC>"
)


def without_date_tokens(text: str) -> str:
    return DATE_TOKEN.sub("", text)


def date_token(at: datetime, fmt: str = "{date_short_pretty} {time}") -> str:
    """What keyhunt writes for `at` (for tests that expect one)."""
    return f"<!date^{int(at.timestamp())}^{fmt}|{at.astimezone(UTC):%Y-%m-%d %H:%M} UTC>"
