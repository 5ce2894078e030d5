"""Typed values that flow through a hunt: targets, windows, parsed events, findings, errors."""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any


class Severity(enum.StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"

    @property
    def rank(self) -> int:
        """Higher is worse: critical 4 ... info 0."""
        return _RANKS[self]

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls(text.strip().lower())
        except ValueError:
            allowed = ", ".join(s.value for s in cls)
            raise ValueError(f"unknown severity {text!r} (allowed: {allowed})") from None


_RANKS = {
    Severity.CRITICAL: 4,
    Severity.HIGH: 3,
    Severity.MEDIUM: 2,
    Severity.LOW: 1,
    Severity.INFO: 0,
}


_ACCOUNT_ID = re.compile(r"[0-9]{12}")


def is_account_id(text: str) -> bool:
    """An AWS account ID: exactly 12 ASCII digits (no sign, no space, no trailing newline)."""
    return _ACCOUNT_ID.fullmatch(text) is not None


@dataclass(frozen=True, slots=True)
class Target:
    """One place CloudTrail is read: an account in a region."""

    account_id: str
    region: str

    def __str__(self) -> str:
        return f"{self.account_id}/{self.region}"


@dataclass(frozen=True, slots=True)
class Window:
    """A closed time range [start, end] in UTC, as LookupEvents reads it."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("window bounds must be timezone-aware")
        if self.start > self.end:
            raise ValueError("window start is after its end")


@dataclass(frozen=True, slots=True)
class Actor:
    """Who made the call, from `userIdentity`. `type` is None when it could not be read."""

    type: str | None
    arn: str | None
    name: str | None
    account_id: str | None
    access_key_id: str | None
    invoked_by: str | None
    session_issuer_arn: str | None
    mfa_authenticated: bool | None
    console_session: bool

    @classmethod
    def unknown(cls, name: str | None = None) -> Actor:
        """The caller of a record whose userIdentity could not be read: type unknown."""
        return cls(None, None, name, None, None, None, None, None, console_session=False)


@dataclass(frozen=True, slots=True)
class KeyEvent:
    """One parsed CloudTrail record about an access key (create, update or delete)."""

    event_id: str
    event_time: datetime
    event_name: str
    account_id: str | None
    region: str | None
    actor: Actor
    request_user: str | None
    response_user: str | None
    access_key_id: str | None
    key_status: str | None
    key_create_date: datetime | None
    source_ip: str | None
    user_agent: str | None
    error_code: str | None
    error_message: str | None
    # What could not be read, one "<dotted.field>: <what was wrong>" line each (checks.parse).
    problems: tuple[str, ...] = ()

    @classmethod
    def partial(
        cls,
        event_id: str,
        event_time: datetime,
        problems: tuple[str, ...],
        *,
        event_name: str = "CreateAccessKey",
        actor: Actor | None = None,
        **known: str | None,
    ) -> KeyEvent:
        """An event of which little could be read: every field not given is None (unknown),
        and `problems` says what could not be read."""
        values: dict[str, Any] = {
            "event_id": event_id,
            "event_time": event_time,
            "event_name": event_name,
            "actor": actor or Actor.unknown(),
            "problems": problems,
        }
        unknown = {f.name: None for f in fields(cls) if f.name not in values}
        return cls(**(unknown | known | values))

    @property
    def malformed(self) -> bool:
        return bool(self.problems)

    @property
    def failed(self) -> bool:
        return self.error_code is not None

    @property
    def target_user(self) -> str | None:
        """The IAM user the key belongs to; `root` for the root user's own key.

        CONTRACT: responseElements userName, else requestParameters userName, else the actor.
        The root user's own key is reported as `root` even when the response names it "Root"
        (the console does that), so it can never be mistaken for an IAM user called Root.
        """
        if self.actor.type == "Root" and self.request_user is None:
            return "root"
        if self.response_user is not None:
            return self.response_user
        if self.request_user is not None:
            return self.request_user
        return self.actor.name


@dataclass(frozen=True, slots=True)
class ApiActivity:
    """One API call made with a key under investigation."""

    event_id: str
    event_time: datetime
    event_source: str | None
    event_name: str
    region: str | None
    account_id: str | None
    source_ip: str | None
    user_agent: str | None
    error_code: str | None
    problems: tuple[str, ...] = ()
    # requestParameters as recorded (attacker-chosen text: escape and bound before showing),
    # None when the record had none or they were not an object.
    request: Mapping[str, Any] | None = field(default=None, hash=False, compare=True)


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """One access key as IAM's ListAccessKeys reports it."""

    access_key_id: str
    status: str
    create_date: datetime | None


@dataclass(frozen=True, slots=True)
class KeyRetirement:
    """Another of the user's keys set Inactive or deleted near a new key's creation, as
    CloudTrail recorded it: what made the finding a likely rotation, and when."""

    access_key_id: str | None
    action: str  # "deactivated" or "deleted"
    at: datetime


@dataclass(frozen=True, slots=True)
class Finding:
    """A classified CreateAccessKey event: what happened, how bad, why, and its triage state."""

    event: KeyEvent
    severity: Severity
    reasons: tuple[str, ...]
    status: str = "open"
    target: Target | None = None
    # The target user's keys as IAM lists them now (enrichment); None when not looked up.
    user_keys: tuple[KeyInfo, ...] | None = None
    # The retirements that made it a likely rotation (CloudTrail), oldest first.
    retired: tuple[KeyRetirement, ...] = ()
    # What the on-call calls the account ("prod"): from the config, the Organization or the
    # account alias; None when none is known.
    account_name: str | None = None
    # What the new key has done since that matters (checks.danger), one plain line each,
    # e.g. "attached AdministratorAccess to bob"; found by an investigation or a later poll.
    followups: tuple[str, ...] = ()

    @property
    def account_id(self) -> str | None:
        if self.event.account_id:
            return self.event.account_id
        return self.target.account_id if self.target else None

    @property
    def searched_account(self) -> str | None:
        """The account the event was read from (IAM is asked there, with the same
        credentials); the record's own account when it was not read from a target."""
        return self.target.account_id if self.target else self.account_id

    @property
    def region(self) -> str | None:
        """The event's region, or the one searched when the record did not say."""
        if self.event.region:
            return self.event.region
        return self.target.region if self.target else None

    @property
    def suppressed(self) -> bool:
        return "suppressed" in self.reasons

    def to_record(self) -> dict[str, Any]:
        """The CONTRACT section 2 shape (checks.record, where the field list lives)."""
        from checks.record import to_record  # record imports this module

        return to_record(self)


# Stages whose failure means a target was not searched (the others only lose enrichment).
FATAL_STAGES = frozenset({"accounts", "assume_role", "lookup"})


@dataclass(frozen=True, slots=True)
class TargetError:
    """A target, or part of it, that could not be read. Never silently "no findings"."""

    target: Target
    stage: str  # "accounts", "assume_role", "lookup", "rotation_context", "iam"
    code: str  # AWS error code, or "Throttled", "EndpointError", ...
    message: str

    def __str__(self) -> str:
        return f"{self.target}: {self.stage} failed: {self.code}: {self.message}"


@dataclass(slots=True)
class HuntStats:
    lookup_calls: int = 0  # LookupEvents HTTP attempts, retries included
    events_read: int = 0  # LookupEvents entries seen
    # Records read only in part: some fields could not be read (each CreateAccessKey one is
    # still a finding, reason `malformed`), or a key change or API call without an ID, name
    # or time, which is skipped.
    malformed: int = 0
    throttled: int = 0
    iam_calls: int = 0
    # Records that are not CloudTrail records at all: CloudTrailEvent missing, not JSON or not
    # a JSON object. Not counted in `malformed`. A CreateAccessKey one (by LookupEvents'
    # EventName) is still a finding, built from the envelope; the others are skipped.
    unreadable: int = 0


# Summed per target and per hunt (checks.hunt._merge, checks.investigate).
HUNT_STAT_FIELDS: tuple[str, ...] = (
    "lookup_calls",
    "events_read",
    "malformed",
    "throttled",
    "iam_calls",
    "unreadable",
)


@dataclass(slots=True)
class HuntResult:
    window: Window
    targets: list[Target]
    findings: list[Finding]
    errors: list[TargetError]
    stats: HuntStats
    per_target: dict[Target, HuntStats] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """True when every target was read; enrichment failures do not make a hunt partial."""
        return not any(e.stage in FATAL_STAGES for e in self.errors)

    @property
    def failed_targets(self) -> list[Target]:
        return sorted(
            {e.target for e in self.errors if e.stage in FATAL_STAGES},
            key=lambda t: (t.account_id, t.region),
        )
