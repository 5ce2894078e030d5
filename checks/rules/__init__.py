"""Detection rules: one behaviour per module, each a pure function of one event plus context.

A rule's id is its module name and the reason code it adds to a finding (CONTRACT section 3).
`classify.py` turns the matched rules into a severity; rules themselves never decide it.

A rule is one place: its module holds the match, how it moves severity (including a per-event
`cap`), and every word the alert uses for it (`headline`, `words`, `next_step`, `about()`), so
the renderer reads them from here. Its expected findings live beside its fixtures, in
`tests/fixtures/records/<rule_id>/expected.json`. A new rule is a module here, a line in
`all_rules()` and a fixtures folder.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cache
from types import MappingProxyType

from checks.model import KeyEvent, Severity

MITRE_TECHNIQUE = "T1098.001"  # Account Manipulation: Additional Cloud Credentials

# `suppressed` is a reason but not a rule: classify.py adds it when a suppression matches.
SUPPRESSED = "suppressed"
SUPPRESSED_WORDS = "matches a configured suppression"
# The headline when no matched rule has one of its own: (what happened, what was tried).
DEFAULT_HEADLINE = ("access key created", "failed attempt to create an access key")


@dataclass(frozen=True, slots=True)
class RuleContext:
    """What a rule may know beyond the event itself: nearby key changes in the same account."""

    key_changes: Sequence[KeyEvent] = ()
    rotation_window: timedelta = timedelta(hours=24)
    # key_changes indexed by (account, owner casefolded), built once: a rule then looks only
    # at one user's changes instead of every change for every event.
    by_owner: Mapping[tuple[str | None, str], tuple[KeyEvent, ...]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        index: dict[tuple[str | None, str], list[KeyEvent]] = {}
        for change in self.key_changes:
            owner = change_owner(change)
            if owner is not None:
                index.setdefault((change.account_id, owner.casefold()), []).append(change)
        object.__setattr__(self, "by_owner", {k: tuple(v) for k, v in index.items()})

    def changes_for(self, account_id: str | None, user: str | None) -> tuple[KeyEvent, ...]:
        if user is None:
            return ()
        return self.by_owner.get((account_id, user.casefold()), ())


def change_owner(change: KeyEvent) -> str | None:
    """Whose key an Update/DeleteAccessKey acted on: without requestParameters.userName the
    caller acted on its own key."""
    return change.request_user or change.actor.name


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    title: str
    description: str
    matches: Callable[[KeyEvent, RuleContext], bool]
    # The reason in words, for the alert's "Why" line: one line, plain text.
    words: str
    # What the on-call should do next when this rule matched: one line, plain text.
    next_step: str
    # (what happened, what was tried when the call failed) when this rule names the alert, or
    # None. When several matched rules have one, the first in all_rules() order gives it.
    headline: tuple[str, str] | None = None
    # How the rule moves severity; classify.py applies these in a fixed order:
    # base (highest wins) -> cap -> lowers_to unless the actor is root -> at_least.
    severity: Severity | None = None  # sets the base severity (highest base wins)
    cap: Callable[[KeyEvent], Severity] | None = None  # never above cap(event)
    lowers_to: Severity | None = None  # lowered to this unless the actor is root
    at_least: Severity | None = None  # never below this, whatever lowered it (applied last)
    false_positives: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    mitre: str = MITRE_TECHNIQUE


def same_user(a: str | None, b: str | None) -> bool:
    """Exact IAM user name comparison. IAM names are unique ignoring case, so compare casefolded,
    and never by substring: `jack` is not `jackson`."""
    return a is not None and b is not None and a.casefold() == b.casefold()


def all_rules() -> tuple[Rule, ...]:
    """Every rule, in a fixed order. The order matters twice: classify() lists a finding's
    reasons in it, and headline_for() takes the headline from the first matched rule that has
    one (root_actor, then key_for_other_user, self_service, and malformed last: a better-known
    reason gives the headline; the body says what could not be read)."""
    from checks.rules import (
        console,
        failed_attempt,
        key_for_other_user,
        likely_rotation,
        malformed,
        root_actor,
        self_service,
    )

    return (
        root_actor.RULE,
        key_for_other_user.RULE,
        self_service.RULE,
        failed_attempt.RULE,
        console.RULE,
        likely_rotation.RULE,
        malformed.RULE,
    )


# -- for the renderer: pure functions of reason codes --------------------------------------
@cache
def rules_by_id() -> Mapping[str, Rule]:
    """all_rules() by id, in all_rules() order (built once: the rule modules import this one)."""
    return MappingProxyType({rule.id: rule for rule in all_rules()})


def rule_by_id(rule_id: str) -> Rule | None:
    """The rule a reason code names, or None (`suppressed`, or a code from a newer version)."""
    return rules_by_id().get(rule_id)


def words_for(reason: str) -> str:
    """One reason in words; a code no rule knows is shown as itself."""
    if reason == SUPPRESSED:
        return SUPPRESSED_WORDS
    rule = rule_by_id(reason)
    return rule.words if rule is not None else reason


def reason_words(reasons: Iterable[str]) -> str:
    """The alert's "Why" line: every reason in words, in the order given."""
    return " · ".join(words_for(reason) for reason in reasons)


def headline_for(reasons: Sequence[str], failed: bool) -> str:
    """The alert's headline: from the first rule in all_rules() order that is among `reasons`
    and has a headline; `failed` (the call returned an error) picks what was tried."""
    done, tried = next(
        (
            rule.headline
            for rule in rules_by_id().values()
            if rule.headline is not None and rule.id in reasons
        ),
        DEFAULT_HEADLINE,
    )
    return tried if failed else done


# Which matched rule's next step the alert shows: the one that most changes what to do (no
# key exists when the call failed; a record partly unread must be checked by hand; a likely
# rotation says more than self-service alone).
NEXT_STEP_ORDER = (
    "root_actor",
    "failed_attempt",
    "malformed",
    "key_for_other_user",
    "likely_rotation",
    "self_service",
    "console",
)


def next_step_for(reasons: Iterable[str]) -> str | None:
    """The alert's one line of next step, from the first of NEXT_STEP_ORDER among `reasons`;
    None when no rule matched (a suppressed finding is never posted)."""
    matched = set(reasons)
    rule = next((rule_by_id(r) for r in NEXT_STEP_ORDER if r in matched), None)
    return rule.next_step if rule is not None else None


def about(rule: Rule) -> str:
    """The "About this rule" line, plain text: the title and its known false positives."""
    text = f"About {rule.id}: {rule.title}."
    if rule.false_positives:
        text += " Known false positives: " + " ".join(rule.false_positives)
    return text
