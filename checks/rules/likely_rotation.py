"""The user's other key was deactivated or deleted near the new key's creation: a rotation."""

from checks.model import KeyEvent, KeyRetirement, Severity
from checks.rules import Rule, RuleContext, change_owner, same_user

ROTATION_EVENTS = frozenset({"UpdateAccessKey", "DeleteAccessKey"})


def retires_a_key_of(change: KeyEvent, user: str | None, new_key: str | None) -> bool:
    """A successful deactivation or deletion of one of `user`'s keys other than `new_key`."""
    if change.failed or change.event_name not in ROTATION_EVENTS:
        return False
    if change.event_name == "UpdateAccessKey" and (change.key_status or "").lower() != "inactive":
        return False
    if change.access_key_id is not None and change.access_key_id == new_key:
        return False
    return same_user(change_owner(change), user)


def retirements(event: KeyEvent, ctx: RuleContext) -> tuple[KeyRetirement, ...]:
    """The user's other keys retired within the rotation window of `event`, oldest first."""
    if event.failed or event.actor.type == "Root":
        return ()
    user = event.target_user
    found = [
        KeyRetirement(
            access_key_id=change.access_key_id,
            action="deleted" if change.event_name == "DeleteAccessKey" else "deactivated",
            at=change.event_time,
        )
        for change in ctx.changes_for(event.account_id, user)
        if abs(change.event_time - event.event_time) <= ctx.rotation_window
        and retires_a_key_of(change, user, event.access_key_id)
    ]
    return tuple(sorted(found, key=lambda r: r.at))


def matches(event: KeyEvent, ctx: RuleContext) -> bool:
    return bool(retirements(event, ctx))


RULE = Rule(
    id="likely_rotation",
    title="Likely rotation",
    description=(
        "Within the rotation window (default 24 h either side) the same user's other key was "
        "set Inactive or deleted. Lowers the finding to low; never for the root user."
    ),
    matches=matches,
    words="the user's other key was retired nearby (likely rotation)",
    next_step=(
        "Confirm the owner rotated the key (not someone else deleting it), then mark it an "
        "expected rotation."
    ),
    lowers_to=Severity.LOW,
    false_positives=(
        "An attacker who deletes the victim's old key after creating a new one looks alike; "
        "the actor and source IP still show in the alert.",
    ),
    references=(
        "https://docs.aws.amazon.com/IAM/latest/UserGuide/id_credentials_access-keys.html#rotating_access_keys_console",
    ),
)
