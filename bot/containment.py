"""Deactivate / Reactivate a finding's key, as AWS's compromised-key playbook says: make it
inactive (never delete it: deleting loses the evidence and cannot be undone), then watch the
same user for a second key.

Opt-in (`response_actions: [deactivate]`) and for `responders` only. Each action assumes the
separate KeyHuntResponder role (config/responder-role.yaml: iam:ListAccessKeys and
iam:UpdateAccessKey, nothing else) in the key's account, with the clicking Slack user in the
role session name so CloudTrail shows who pressed the button. keyhunt's own read-only role
never gains a write.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from bot import metrics
from bot.settings import Settings
from bot.store import Store, StoredFinding
from bot.stored import KeyAction
from checks.awserror import error_of
from checks.hunt import IAM_REGION
from checks.model import Severity
from checks.sessions import CLIENT_CONFIG

log = logging.getLogger(__name__)
SECOND_KEY_WATCH = timedelta(minutes=30)
# CloudTrail's eventTime has whole seconds and AWS's clock is not ours: a key made moments
# before the deactivation landed is a second key all the same.
CLOCK_SLACK = timedelta(minutes=5)
DEACTIVATE, REACTIVATE = "deactivate", "reactivate"
# action -> (the status the key must have, the status it is given)
STATUS_CHANGE = {DEACTIVATE: ("Active", "Inactive"), REACTIVATE: ("Inactive", "Active")}


@dataclass(frozen=True)
class Outcome:
    done: bool
    message: str  # what the clicking person is told (ephemeral), escaped by the caller


class Containment:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        clock: Callable[[], datetime],
        base: Callable[[], boto3.Session] = lambda: boto3.Session(),
    ) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.base = base

    def allowed(self, user: str) -> bool:
        return DEACTIVATE in self.settings.response_actions and user in self.settings.responders

    def act(self, stored: StoredFinding, action: str, user: str) -> Outcome:
        """Change the key's status, if it is in the state the action needs."""
        if action not in STATUS_CHANGE:
            raise ValueError(action)
        e, finding = stored.finding.event, stored.finding
        account = finding.searched_account
        if not e.access_key_id or e.error_code or not e.target_user or not account:
            return self._refused(action, "this alert has no key to act on")
        if e.target_user == "root" or e.actor.type == "Root":
            return self._refused(
                action, "a root key can only be deactivated by the root user itself"
            )
        needed, wanted = STATUS_CHANGE[action]
        try:
            iam = self._iam(str(account), user)
            status = self._status(iam, e.target_user, e.access_key_id)
            if status is None:
                return self._refused(
                    action, f"IAM no longer lists {e.access_key_id} for {e.target_user}"
                )
            if status != needed:
                return self._refused(action, f"the key is {status}, not {needed}")
            iam.update_access_key(
                UserName=e.target_user, AccessKeyId=e.access_key_id, Status=wanted
            )
        except ClientError as exc:
            code, _ = error_of(exc)
            log.warning("%s of %s failed: %s", action, stored.event_id, code)
            metrics.RESPONSE_ACTIONS.labels(action, "failed").inc()
            return Outcome(False, f"AWS refused: {code}. Nothing changed.")
        except BotoCoreError as exc:
            metrics.RESPONSE_ACTIONS.labels(action, "failed").inc()
            return Outcome(False, f"AWS could not be reached ({type(exc).__name__}).")
        now = self.clock()
        self.store.add_key_action(
            stored.event_id,
            KeyAction(
                action=action,
                user_id=user,
                at=now,
                account_id=str(account),
                user_name=e.target_user,
                access_key_id=e.access_key_id,
                watch_until=now + SECOND_KEY_WATCH if action == DEACTIVATE else None,
            ),
        )
        metrics.RESPONSE_ACTIONS.labels(action, "done").inc()
        return Outcome(True, f"{e.access_key_id} is now {wanted}.")

    def _refused(self, action: str, why: str) -> Outcome:
        metrics.RESPONSE_ACTIONS.labels(action, "refused").inc()
        return Outcome(False, f"Not done: {why}.")

    def _iam(self, account: str, user: str) -> Any:
        """IAM in `account` as KeyHuntResponder, for this one action (15-minute credentials)."""
        arn = f"arn:aws:iam::{account}:role/{self.settings.responder_role_name}"
        params: dict[str, Any] = {
            "RoleArn": arn,
            # Who clicked, in CloudTrail's record of every call made with these credentials.
            "RoleSessionName": "keyhunt-" + re.sub(r"[^\w+=,.@-]", "", user)[:40],
            "DurationSeconds": 900,
        }
        if self.settings.external_id:
            params["ExternalId"] = str(self.settings.external_id)
        base = self.base()
        creds = base.client("sts", region_name=IAM_REGION, config=CLIENT_CONFIG).assume_role(
            **params
        )["Credentials"]
        return boto3.Session(
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
        ).client("iam", region_name=IAM_REGION, config=CLIENT_CONFIG)

    @staticmethod
    def _status(iam: Any, user: str, key: str) -> str | None:
        listed = iam.list_access_keys(UserName=user).get("AccessKeyMetadata", [])
        return next((str(k["Status"]) for k in listed if k.get("AccessKeyId") == key), None)


def second_keys(store: Store, new_ids: list[str], now: datetime) -> list[str]:
    """New findings that are a second key for a user whose key keyhunt deactivated less than
    SECOND_KEY_WATCH ago: marked (critical, and never snoozed). Returns their IDs."""
    watched = store.watches(now - SECOND_KEY_WATCH)
    if not watched or not new_ids:
        return []
    marked = []
    for event_id in new_ids:
        stored = store.get(event_id)
        if stored is None:
            continue
        f = stored.finding
        account = f.searched_account
        for origin, action in watched:
            if (
                origin != event_id
                and action.account_id == account
                and action.user_name == f.event.target_user
                and action.at - CLOCK_SLACK <= f.event.event_time
                and f.event.event_time <= (action.watch_until or action.at)
            ):
                store.add_key_action(
                    event_id,
                    KeyAction(
                        "second_key",
                        action.user_id,
                        action.at,
                        action.account_id,
                        action.user_name,
                        action.access_key_id,
                    ),
                )
                store.add_followups(event_id, (), Severity.CRITICAL)
                marked.append(event_id)
                break
    return marked
