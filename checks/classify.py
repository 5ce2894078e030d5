"""Turn a parsed event into a finding: which rules matched, and what severity follows."""

from __future__ import annotations

from collections.abc import Sequence

from checks.model import Finding, KeyEvent, Severity, Target
from checks.rules import SUPPRESSED, Rule, RuleContext, all_rules, likely_rotation
from checks.suppress import Suppression, matching_suppression

RULES: tuple[Rule, ...] = all_rules()
# When no base rule matches (an unknown principal type creating its own key, say) the event is
# still a finding: every CreateAccessKey is worth a look.
DEFAULT_SEVERITY = Severity.MEDIUM


def classify(
    event: KeyEvent,
    ctx: RuleContext | None = None,
    suppressions: Sequence[Suppression] = (),
    target: Target | None = None,
) -> Finding:
    context = ctx if ctx is not None else RuleContext()
    matched = [rule for rule in RULES if rule.matches(event, context)]
    severity = severity_for(event, matched)
    reasons = [rule.id for rule in matched]
    if matching_suppression(event, suppressions, target) is not None:
        reasons.append(SUPPRESSED)
    # The evidence behind a likely rotation travels with the finding: the alert says which
    # key was retired and when, not only that one was.
    retired = likely_rotation.retirements(event, context) if likely_rotation.RULE in matched else ()
    return Finding(
        event=event, severity=severity, reasons=tuple(reasons), target=target, retired=retired
    )


def severity_for(event: KeyEvent, matched: Sequence[Rule]) -> Severity:
    """Base (highest wins, else DEFAULT_SEVERITY), then every cap, then lowers_to unless the
    actor is root, then at_least: the order each Rule field documents."""
    bases = [rule.severity for rule in matched if rule.severity is not None]
    severity = max(bases, key=lambda s: s.rank) if bases else DEFAULT_SEVERITY
    for rule in matched:
        if rule.cap is not None:
            cap = rule.cap(event)
            if severity.rank > cap.rank:
                severity = cap
    if event.actor.type != "Root":
        for rule in matched:
            if rule.lowers_to is not None and severity.rank > rule.lowers_to.rank:
                severity = rule.lowers_to
    for rule in matched:
        if rule.at_least is not None and severity.rank < rule.at_least.rank:
            severity = rule.at_least
    return severity
