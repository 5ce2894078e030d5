"""Detection rules: one behaviour per module, each a pure function of one event plus context.

A rule's id is its module name and the reason code it adds to a finding (CONTRACT section 3).
`classify.py` turns the matched rules into a severity; rules themselves never decide it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from checks.model import KeyEvent, Severity

MITRE_TECHNIQUE = "T1098.001"  # Account Manipulation: Additional Cloud Credentials


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
    # How the rule moves severity; classify.py applies these in a fixed order.
    severity: Severity | None = None  # sets the base severity (highest base wins)
    caps_at: Severity | None = None  # never above this
    lowers_to: Severity | None = None  # lowered to this unless the actor is root
    at_least: Severity | None = None  # never below this, whatever lowered it (applied last)
    false_positives: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    mitre: str = MITRE_TECHNIQUE
    tags: tuple[str, ...] = field(default=())


def same_user(a: str | None, b: str | None) -> bool:
    """Exact IAM user name comparison. IAM names are unique ignoring case, so compare casefolded,
    and never by substring: `jack` is not `jackson`."""
    return a is not None and b is not None and a.casefold() == b.casefold()


def all_rules() -> tuple[Rule, ...]:
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
