"""What a new access key did that matters: a table of the API calls of concern, and pure
functions that mark a key's calls against it and rank them. No I/O, no AWS calls.

The table (`DANGERS`) is data: each entry has an `id` (its mark id), the `calls` it looks at
(an exact eventSource and exact eventNames; never a name alone, since any service may have a
call of that name), a `severity` of concern, how to `read` the call's requestParameters into
one plain-text line, and the `next_step` the on-call takes. An entry's reader may also decide
that a call it looks at is of no concern (AssumeRole into the caller's own account,
UpdateDetector that enables, a call from the creator's address): it returns None.

    marks_for(call, *, created_from_ip) -> tuple[Mark, ...]
        The marks one call earns, worst first (then table order); () for an ordinary call.
        `created_from_ip` is the sourceIPAddress of the CreateAccessKey that made the key,
        or None when it is unknown (then no call is marked for its address).
    rank(activity, *, created_from_ip) -> list[Marked]
        Every call once, each with its marks: marked calls first, worst first and then in time
        order, then the unmarked ones in time order. What a renderer shows top-down, with ⚠
        on the marked ones.
    headline(marks) -> str | None
        The single most important mark as one line for the channel alert ("the new key has
        since attached AdministratorAccess to bob"); None when there is none.
    danger_by_id(mark_id) -> Danger | None
        The table entry behind a mark: its title and next step.

A failed call (errorCode set) is still marked, one severity step lower (it shows intent, but
the change did not happen), and its line says what was tried and the error:
"tried to attach AdministratorAccess to bob (AccessDenied)".

Everything in a record is chosen by whoever made the call. Readers take only strings from
requestParameters (any other JSON type reads as unknown) and never raise. Each value shown is
bounded (MAX_VALUE characters, cut with "…"), with control, format and line-separator
characters removed or made spaces, so a Mark's words are always one line of plain text. They
are not escaped for any markup: the renderer escapes them (`<!channel>` stays as text here).
"""

from __future__ import annotations

import ipaddress
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from types import MappingProxyType

from checks.model import ApiActivity, Severity

# The longest attacker-chosen value a line shows, and an error code's. IAM names are at most
# 64 (users) or 128 (policies) characters; 64 keeps a line readable in Slack.
MAX_VALUE = 64
MAX_ERROR_CODE = 40
# How far into a value its cleaning looks: a 10 MB name costs no more than a short one.
_SCAN = MAX_VALUE * 4

HEADLINE_PREFIX = "the new key has since "

# What a reader returns: (what the call did, what it tried when it failed), as verb phrases
# that follow "the new key has since ...". The same convention as a rule's headline.
Phrase = tuple[str, str]
_Reader = Callable[[ApiActivity, "_Context"], Phrase | None]

_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class Calls:
    """The calls an entry looks at: `source` is an exact eventSource and `names` exact
    eventNames (None: every call of that source whose name starts with none of
    `except_prefixes`). `source` None is every call of every service (the address entry)."""

    source: str | None
    names: frozenset[str] | None = None
    except_prefixes: tuple[str, ...] = ()

    def match(self, call: ApiActivity) -> bool:
        if self.source is not None and call.event_source != self.source:
            return False
        if self.names is not None:
            return call.event_name in self.names
        return not call.event_name.startswith(self.except_prefixes)


@dataclass(frozen=True, slots=True)
class Danger:
    """One entry of the table: which calls matter, how much, and how to say what they did."""

    id: str
    title: str
    calls: Calls
    severity: Severity
    read: _Reader
    next_step: str


@dataclass(frozen=True, slots=True)
class Mark:
    """Why one call is of concern: the entry's id, one line of plain text, and how much."""

    id: str
    words: str
    severity: Severity


@dataclass(frozen=True, slots=True)
class Marked:
    """One call of a key's activity with its marks (none for an ordinary call)."""

    call: ApiActivity
    marks: tuple[Mark, ...] = ()

    @property
    def worst(self) -> Severity | None:
        """The highest severity among the marks; None when the call is not marked."""
        return self.marks[0].severity if self.marks else None


@dataclass(frozen=True, slots=True)
class _Context:
    """What a reader may know beyond the call: the address the key was created from."""

    creator_ip: _IPAddress | None


# ---------------------------------------------------------------------------- entry points


def marks_for(call: ApiActivity, *, created_from_ip: str | None) -> tuple[Mark, ...]:
    """The marks `call` earns, worst first (ties in table order); () when none."""
    return _marks(call, _Context(_ip(created_from_ip)))


def rank(activity: Sequence[ApiActivity], *, created_from_ip: str | None) -> list[Marked]:
    """Every call once: the marked ones first (worst first, then by time), then the rest in
    time order. Time ties are broken by event ID, so the order never depends on the input's."""
    ctx = _Context(_ip(created_from_ip))
    marked = [Marked(call, _marks(call, ctx)) for call in activity]

    def order(item: Marked) -> tuple[int, datetime, str]:
        worst = item.worst
        group = 0 if worst is None else -(worst.rank + 1)  # marked first, worst first
        return (group, item.call.event_time, item.call.event_id)

    return sorted(marked, key=order)


def headline(marks: Iterable[Mark]) -> str | None:
    """The worst mark as the alert's line ("the new key has since ..."); the first given wins
    a tie, so `rank()`'s order picks the earliest. None when there is no mark."""
    worst: Mark | None = None
    for mark in marks:
        if worst is None or mark.severity.rank > worst.severity.rank:
            worst = mark
    return None if worst is None else HEADLINE_PREFIX + worst.words


@cache
def dangers_by_id() -> Mapping[str, Danger]:
    return MappingProxyType({danger.id: danger for danger in DANGERS})


def danger_by_id(mark_id: str) -> Danger | None:
    """The table entry a mark id names, or None (an id from a newer version)."""
    return dangers_by_id().get(mark_id)


def _marks(call: ApiActivity, ctx: _Context) -> tuple[Mark, ...]:
    found: list[Mark] = []
    for danger in DANGERS:
        if not danger.calls.match(call):
            continue
        phrase = danger.read(call, ctx)
        if phrase is None:
            continue
        done, tried = phrase
        if call.error_code is None:
            found.append(Mark(danger.id, done, danger.severity))
        else:
            code = _clean(call.error_code, MAX_ERROR_CODE) or "failed"
            found.append(Mark(danger.id, f"{tried} ({code})", _lowered(danger.severity)))
    # Stable: equal severities keep table order.
    found.sort(key=lambda m: -m.severity.rank)
    return tuple(found)


def _lowered(severity: Severity) -> Severity:
    """One step lower for a failed call, never below low: it was tried, not done."""
    order = (Severity.LOW, Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL)
    if severity not in order or severity is Severity.LOW:
        return severity
    return order[order.index(severity) - 1]


# ---------------------------------------------------------------------------- reading values


def _clean(value: object, limit: int = MAX_VALUE) -> str | None:
    """A string value as one bounded line of text; None when it is not a string or nothing
    printable is left. Line breaks, tabs and other spaces become one space; control, format
    (bidi overrides, zero-width), surrogate, private-use and unassigned characters go."""
    if not isinstance(value, str):
        return None
    cut = len(value) > _SCAN
    kept: list[str] = []
    for char in value[:_SCAN]:
        if char.isspace():
            kept.append(" ")
            continue
        category = unicodedata.category(char)
        if category in ("Cc", "Zl", "Zp"):
            kept.append(" ")
        elif category not in ("Cf", "Cs", "Co", "Cn"):
            kept.append(char)
    text = " ".join("".join(kept).split())
    if not text:
        return None
    if cut or len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def _param(call: ApiActivity, key: str) -> object:
    request = call.request
    return request.get(key) if isinstance(request, Mapping) else None


def _text(call: ApiActivity, key: str, unknown: str) -> str:
    """A requestParameters string, cleaned; `unknown` when missing or not a string."""
    return _clean(_param(call, key)) or unknown


def _own_or(call: ApiActivity, key: str, unknown: str) -> str:
    """A user name that IAM defaults to the caller's own user when it is left out."""
    value = _param(call, key)
    if value is None:
        return "its own user"
    return _clean(value) or unknown


def _last_part(value: object) -> str | None:
    """The name at the end of an ARN or path (`arn:aws:iam::aws:policy/job-function/X` -> X),
    cleaned; a value without a `/` is itself."""
    if not isinstance(value, str):
        return None
    return _clean(value.rstrip("/").rsplit("/", 1)[-1])


def _arn_account(value: object) -> str | None:
    """The 12-digit account in an ARN (`arn:<partition>:<service>:<region>:<account>:...`)."""
    if not isinstance(value, str):
        return None
    parts = value.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        return None
    account = parts[4]
    return account if len(account) == 12 and account.isascii() and account.isdigit() else None


def _ip(text: object) -> _IPAddress | None:
    """An IP address; None for anything else, such as the names AWS services call from
    ("iam.amazonaws.com", "AWS Internal")."""
    if not isinstance(text, str) or len(text) > 64:
        return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None:
        return None  # `fe80::1%<any text>`: CloudTrail never writes one; its text is free
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # ::ffff:203.0.113.50 is 203.0.113.50
    return address


def _name(call: ApiActivity) -> str:
    return _clean(call.event_name) or "an unnamed call"


# ---------------------------------------------------------------------------- readers

_UNKNOWN_USER = "an unknown user"
_UNKNOWN_POLICY = "an unknown policy"
_UNKNOWN_ROLE = "an unknown role"
_UNKNOWN_GROUP = "an unknown group"
_UNKNOWN_TRAIL = "an unknown trail"

# Whom an IAM call names, by eventName: (requestParameters field, shown before the name,
# what to say when it cannot be read). A user is named bare: "to bob".
_PRINCIPALS: Mapping[str, tuple[str, str, str]] = {
    "AttachUserPolicy": ("userName", "", _UNKNOWN_USER),
    "AttachRolePolicy": ("roleName", "role ", _UNKNOWN_ROLE),
    "AttachGroupPolicy": ("groupName", "group ", _UNKNOWN_GROUP),
    "PutUserPolicy": ("userName", "", _UNKNOWN_USER),
    "PutRolePolicy": ("roleName", "role ", _UNKNOWN_ROLE),
    "PutGroupPolicy": ("groupName", "group ", _UNKNOWN_GROUP),
}


def _principal(call: ApiActivity) -> str:
    key, kind, unknown = _PRINCIPALS.get(call.event_name, ("userName", "", _UNKNOWN_USER))
    name = _clean(_param(call, key))
    return f"{kind}{name}" if name else unknown


def _read_attach(call: ApiActivity, ctx: _Context) -> Phrase:
    policy = _last_part(_param(call, "policyArn")) or _UNKNOWN_POLICY
    whom = _principal(call)
    return f"attached {policy} to {whom}", f"tried to attach {policy} to {whom}"


def _read_inline(call: ApiActivity, ctx: _Context) -> Phrase:
    policy = _text(call, "policyName", "an unnamed policy")
    whom = _principal(call)
    return (
        f"put inline policy {policy} on {whom}",
        f"tried to put inline policy {policy} on {whom}",
    )


def _read_group_add(call: ApiActivity, ctx: _Context) -> Phrase:
    user = _text(call, "userName", _UNKNOWN_USER)
    group = _text(call, "groupName", _UNKNOWN_GROUP)
    return f"added {user} to group {group}", f"tried to add {user} to group {group}"


def _read_create_user(call: ApiActivity, ctx: _Context) -> Phrase:
    user = _text(call, "userName", _UNKNOWN_USER)
    return f"created user {user}", f"tried to create user {user}"


def _read_create_key(call: ApiActivity, ctx: _Context) -> Phrase:
    user = _own_or(call, "userName", _UNKNOWN_USER)
    return (
        f"created another access key for {user}",
        f"tried to create another access key for {user}",
    )


def _read_login_profile(call: ApiActivity, ctx: _Context) -> Phrase:
    user = _own_or(call, "userName", _UNKNOWN_USER)
    if call.event_name == "UpdateLoginProfile":
        return (
            f"changed the console password of {user}",
            f"tried to change the console password of {user}",
        )
    return f"gave {user} a console password", f"tried to give {user} a console password"


def _read_trust_policy(call: ApiActivity, ctx: _Context) -> Phrase:
    role = _text(call, "roleName", _UNKNOWN_ROLE)
    return f"changed who can assume role {role}", f"tried to change who can assume role {role}"


def _read_assume_role(call: ApiActivity, ctx: _Context) -> Phrase | None:
    """Only into another account: a role in the caller's own account is everyday use. A role
    ARN without a readable account cannot be told apart, so it is not marked."""
    arn = _param(call, "roleArn")
    account = _arn_account(arn)
    if account is None or account == call.account_id:
        return None
    role = _last_part(arn) or _UNKNOWN_ROLE
    return f"assumed role {role} in {account}", f"tried to assume role {role} in {account}"


def _duration(value: object) -> str:
    """ " valid for 36 h" from a durationSeconds number in STS's range; "" otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return ""
    if not 900 <= value <= 129_600:  # STS's bounds: 15 minutes to 36 hours
        return ""
    seconds = int(value)
    if seconds % 3600 == 0:
        return f" valid for {seconds // 3600} h"
    return f" valid for {seconds // 60} min"


def _read_session_token(call: ApiActivity, ctx: _Context) -> Phrase:
    if call.event_name == "GetFederationToken":
        name = _text(call, "name", "an unnamed user")
        valid = _duration(_param(call, "durationSeconds"))
        return (
            f"got federated credentials as {name}{valid}",
            f"tried to get federated credentials as {name}",
        )
    valid = _duration(_param(call, "durationSeconds"))
    return f"got session credentials{valid}", "tried to get session credentials"


def _read_organizations(call: ApiActivity, ctx: _Context) -> Phrase:
    name = _name(call)
    return (
        f"changed the Organization with {name}",
        f"tried to change the Organization with {name}",
    )


# What each CloudTrail call did to a trail, as (done, tried) templates around its name.
_TRAIL_WORDS: Mapping[str, tuple[str, str]] = {
    "StopLogging": (
        "stopped logging on CloudTrail trail {}",
        "tried to stop logging on CloudTrail trail {}",
    ),
    "DeleteTrail": ("deleted CloudTrail trail {}", "tried to delete CloudTrail trail {}"),
    "UpdateTrail": ("changed CloudTrail trail {}", "tried to change CloudTrail trail {}"),
    "PutEventSelectors": (
        "changed which events CloudTrail trail {} records",
        "tried to change which events CloudTrail trail {} records",
    ),
}


def _read_cloudtrail(call: ApiActivity, ctx: _Context) -> Phrase | None:
    words = _TRAIL_WORDS.get(call.event_name)
    if words is None:
        return None
    # PutEventSelectors names the trail `trailName`, the others `name`; either may be an ARN.
    key = "trailName" if call.event_name == "PutEventSelectors" else "name"
    trail = _last_part(_param(call, key)) or _UNKNOWN_TRAIL
    done, tried = words
    # The templates are ours; only the cleaned name is put in.
    return done.format(trail), tried.format(trail)


def _disabled_features(value: object) -> list[str]:
    """The GuardDuty features an UpdateDetector sets to DISABLED, by name."""
    if not isinstance(value, list):
        return []
    names: list[str] = []
    for item in value[:50]:  # a real detector has about ten features
        if not isinstance(item, Mapping):
            continue
        status = item.get("status")
        if isinstance(status, str) and status.upper() == "DISABLED":
            names.append(_clean(item.get("name")) or "an unnamed feature")
    return names


def _read_guardduty(call: ApiActivity, ctx: _Context) -> Phrase | None:
    detector = _text(call, "detectorId", "an unknown detector")
    if call.event_name == "DeleteDetector":
        return (
            f"deleted GuardDuty detector {detector}",
            f"tried to delete GuardDuty detector {detector}",
        )
    # UpdateDetector: only turning the detector, or one of its features, off. `enable` must
    # be JSON false: GuardDuty takes nothing else to mean off.
    if _param(call, "enable") is False:
        return (
            f"turned off GuardDuty detector {detector}",
            f"tried to turn off GuardDuty detector {detector}",
        )
    features = _disabled_features(_param(call, "features"))
    if not features:
        return None
    what = features[0] if len(features) == 1 else f"{features[0]} and {len(features) - 1} more"
    return (
        f"turned off GuardDuty {what} on detector {detector}",
        f"tried to turn off GuardDuty {what} on detector {detector}",
    )


def _read_source_ip(call: ApiActivity, ctx: _Context) -> Phrase | None:
    """A call from an address other than the creator's. Calls AWS services make for the key
    (sourceIPAddress a service name) and keys whose creator's address is unknown are not
    compared."""
    if ctx.creator_ip is None:
        return None
    address = _ip(call.source_ip)
    if address is None or address == ctx.creator_ip:
        return None
    name = _name(call)
    where = f"from {address}, not the creator's {ctx.creator_ip}"
    return f"called {name} {where}", f"tried to call {name} {where}"


# ---------------------------------------------------------------------------- the table

_IAM = "iam.amazonaws.com"
_STS = "sts.amazonaws.com"


def _names(*names: str) -> frozenset[str]:
    return frozenset(names)


# In the order marks of equal severity are listed on one call.
DANGERS: tuple[Danger, ...] = (
    Danger(
        id="cloudtrail_tamper",
        title="Stopped, deleted or changed a CloudTrail trail",
        calls=Calls(
            "cloudtrail.amazonaws.com",
            _names("StopLogging", "DeleteTrail", "UpdateTrail", "PutEventSelectors"),
        ),
        severity=Severity.CRITICAL,
        read=_read_cloudtrail,
        next_step=(
            "Restore the trail's logging now, then treat everything this key did as hidden "
            "from CloudTrail since."
        ),
    ),
    Danger(
        id="guardduty_tamper",
        title="Deleted or turned off GuardDuty",
        calls=Calls("guardduty.amazonaws.com", _names("DeleteDetector", "UpdateDetector")),
        severity=Severity.CRITICAL,
        read=_read_guardduty,
        next_step="Turn GuardDuty back on in that region and deactivate the key.",
    ),
    Danger(
        id="iam_policy_attach",
        title="Attached a managed policy to a user, role or group",
        calls=Calls(_IAM, _names("AttachUserPolicy", "AttachRolePolicy", "AttachGroupPolicy")),
        severity=Severity.HIGH,
        read=_read_attach,
        next_step="Detach the policy unless its owner expected it, and deactivate the key.",
    ),
    Danger(
        id="iam_inline_policy",
        title="Wrote an inline policy on a user, role or group",
        calls=Calls(_IAM, _names("PutUserPolicy", "PutRolePolicy", "PutGroupPolicy")),
        severity=Severity.HIGH,
        read=_read_inline,
        next_step="Read the inline policy in IAM and delete it unless its owner expected it.",
    ),
    Danger(
        id="iam_group_add",
        title="Added a user to a group",
        calls=Calls(_IAM, _names("AddUserToGroup")),
        severity=Severity.HIGH,
        read=_read_group_add,
        next_step="Remove the user from the group unless its owner expected it.",
    ),
    Danger(
        id="iam_user_create",
        title="Created an IAM user",
        calls=Calls(_IAM, _names("CreateUser")),
        severity=Severity.HIGH,
        read=_read_create_user,
        next_step="Check who asked for the user; delete it and its keys if nobody did.",
    ),
    Danger(
        id="iam_access_key_create",
        title="Created another access key",
        calls=Calls(_IAM, _names("CreateAccessKey")),
        severity=Severity.HIGH,
        read=_read_create_key,
        next_step="Deactivate the other key too: deactivating this one alone leaves it.",
    ),
    Danger(
        id="iam_login_profile",
        title="Set a console password",
        calls=Calls(_IAM, _names("CreateLoginProfile", "UpdateLoginProfile")),
        severity=Severity.HIGH,
        read=_read_login_profile,
        next_step="Delete or reset the console password and check the user's MFA devices.",
    ),
    Danger(
        id="iam_trust_policy",
        title="Changed a role's trust policy",
        calls=Calls(_IAM, _names("UpdateAssumeRolePolicy")),
        severity=Severity.HIGH,
        read=_read_trust_policy,
        next_step="Read the role's trust policy for outside principals and restore it.",
    ),
    Danger(
        id="sts_cross_account_role",
        title="Assumed a role in another account",
        calls=Calls(_STS, _names("AssumeRole")),
        severity=Severity.HIGH,
        read=_read_assume_role,
        next_step=(
            "Tell that account's owners: its role's sessions outlive this key, so revoke "
            "them there."
        ),
    ),
    Danger(
        id="organizations_write",
        title="Changed the AWS Organization",
        calls=Calls("organizations.amazonaws.com", None, ("List", "Describe")),
        severity=Severity.HIGH,
        read=_read_organizations,
        next_step="Check the change in the Organizations console and undo it if unexpected.",
    ),
    Danger(
        id="sts_session_token",
        title="Got temporary credentials",
        calls=Calls(_STS, _names("GetSessionToken", "GetFederationToken")),
        severity=Severity.MEDIUM,
        read=_read_session_token,
        next_step=(
            "Those credentials work until they expire (up to 36 h) even once the key is "
            "deactivated: deny the user with an aws:TokenIssueTime condition."
        ),
    ),
    Danger(
        id="new_source_ip",
        title="Used from another address than the one that created it",
        calls=Calls(None),
        severity=Severity.MEDIUM,
        read=_read_source_ip,
        next_step=(
            "Find out whose address it is: a key handed on to a server is fine, a stranger's "
            "is not."
        ),
    ),
)
