"""What a new key did since, as it changes its finding: the follow-up lines and severity.

An investigation (a click on Investigate) and every poll (for open findings younger than a
day) read the key's calls; the ones checks.danger marks become the finding's `followups`
and raise it to at least high: a new key that immediately changes IAM is the single most
important fact there is about it.
"""

from __future__ import annotations

from collections.abc import Sequence

from checks.danger import rank
from checks.model import ApiActivity, Finding, Severity

RAISED_TO = Severity.HIGH


# The mark for a call from an address other than the creator's: one line per address is
# enough for the alert (every call from it is still marked in the investigation).
NEW_ADDRESS = "new_source_ip"


def followups_of(finding: Finding, activity: Sequence[ApiActivity]) -> tuple[str, ...]:
    """One line per marked call's worst mark, worst first, each line once; calls whose worst
    mark is only their address give one line per address."""
    ranked = rank(activity, created_from_ip=finding.event.source_ip)
    lines: list[str] = []
    addresses: set[str | None] = set()
    for item in ranked:
        if not item.marks:
            continue
        worst = item.marks[0]
        if worst.id == NEW_ADDRESS:
            if item.call.source_ip in addresses:
                continue
            addresses.add(item.call.source_ip)
        lines.append(worst.words)
    return tuple(dict.fromkeys(lines))


def raised_severity(finding: Finding, followups: Sequence[str]) -> Severity:
    """At least high once the key has done something that matters; never lowered."""
    if followups and finding.severity.rank < RAISED_TO.rank:
        return RAISED_TO
    return finding.severity
