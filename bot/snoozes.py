"""Snoozes: "no alert for keys this actor makes for this user in this account, until then".

Stored (bot.store.engagement), made from an alert's menu with a reason, listed by
`/keyhunt snoozes`, lifted by `/keyhunt unsnooze ID`; one that expires stops applying by
itself (it is compared with the clock at every delivery) and the next digest says so. A
snoozed finding is still stored and shown by hunts: only its post is skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from bot.stored import Snooze, StoredFinding


def snooze_key(stored: StoredFinding) -> tuple[str, str, str] | None:
    """(actor ARN, target user, account) of a finding that may be snoozed; None for root
    findings and for what keyhunt cannot name exactly."""
    f = stored.finding
    e = f.event
    account = f.searched_account
    if e.actor.type == "Root" or e.target_user in (None, "root"):
        return None
    if not e.actor.arn or not e.target_user or not account:
        return None
    return e.actor.arn, e.target_user, account


def covering(stored: StoredFinding, snoozes: Sequence[Snooze], now: datetime) -> Snooze | None:
    """The snooze in force that covers the finding. Never one for a second key after a
    deactivation: that is the alert the deactivation was for."""
    key = snooze_key(stored)
    people = stored.engagement
    if key is None or (people and people.key_action and people.key_action.action == "second_key"):
        return None
    for snooze in snoozes:
        live = snooze.removed_at is None and snooze.expires_at > now
        if live and (snooze.actor_arn, snooze.target_user, snooze.account_id) == key:
            return snooze
    return None


def new_snooze(
    stored: StoredFinding, days: int, reason: str, user: str, now: datetime
) -> Snooze | None:
    key = snooze_key(stored)
    if key is None:
        return None
    actor_arn, target_user, account = key
    return Snooze(
        id="",
        actor_arn=actor_arn,
        target_user=target_user,
        account_id=account,
        reason=reason,
        created_by=user,
        created_at=now,
        expires_at=now + timedelta(days=days),
        event_id=stored.event_id,
    )
