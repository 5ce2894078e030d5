"""What Slack (bot.render) and the terminal (bot.terminal) say alike, in plain text.

Short key IDs, severity tallies, the hunt's headline, who a key was for, and the first step
of making attacker-chosen text safe to show (control, format and line-break characters
removed, length bounded). Each renderer then adds its own escaping: Slack's `&<>` and code
spans, the terminal's nothing more.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Iterable
from datetime import UTC

from checks.model import Finding, HuntResult, Severity

# Control, format (bidi overrides, zero-width joiners) and line/paragraph separators.
_INVISIBLE = frozenset({"Cc", "Cf", "Zl", "Zp"})


def visible(text: object, limit: int | None = None, mark: str = " ") -> str:
    """One line of visible characters: every invisible one becomes `mark`; at most `limit`
    characters, the last an ellipsis when cut."""
    value = "" if text is None else str(text)
    value = "".join(mark if unicodedata.category(ch) in _INVISIBLE else ch for ch in value)
    if limit is not None and len(value) > limit:
        value = value[: max(limit - 1, 0)] + "…"
    return value


def short_key(key: object, missing: str = "—") -> str:
    """AKIA…WXYZ: enough to tell two keys apart at a glance; the full ID is shown beside it
    where someone may copy it."""
    value = visible(key, 128)
    if not value:
        return missing
    return value if len(value) <= 12 else f"{value[:4]}…{value[-4:]}"


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'s' * (count != 1)}"


def tally(severities: Iterable[Severity], with_info: bool = False) -> str:
    """`critical 1 · high 0 · medium 2 · low 0`, every severity named even at 0."""
    counts = Counter(severities)
    shown = [s for s in Severity if with_info or s != Severity.INFO]
    return " · ".join(f"{s.value} {counts.get(s, 0)}" for s in shown)


def hunt_headline(result: HuntResult) -> str:
    """`Hunted 2 accounts × 1 region, 2026-12-05 10:00 → 2026-12-06 10:00 UTC: 3 findings`."""
    accounts = len({t.account_id for t in result.targets})
    regions = len({t.region for t in result.targets})
    start = result.window.start.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
    end = result.window.end.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
    return (
        f"Hunted {plural(accounts, 'account')} × {plural(regions, 'region')}, "
        f"{start} → {end} UTC: {plural(len(result.findings), 'finding')}"
    )


def is_own_key(finding: Finding) -> bool:
    """A user's key for itself, or the root user's own key: shown as `(self)`."""
    event = finding.event
    return "self_service" in finding.reasons or (
        event.actor.type == "Root" and event.target_user == "root"
    )


def account_label(account_id: str | None, name: str | None) -> str:
    """'prod (222222222222)', or the ID alone when the account has no name."""
    if not account_id:
        return name or "?"
    return f"{name} ({account_id})" if name else account_id
