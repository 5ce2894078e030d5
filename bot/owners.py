"""Who is the human behind a finding: its actor (and target user) as a Slack user.

Three sources, in this order, each exact (nothing is guessed from a substring):

1. the config's `owners:` mapping: an ARN, an IAM user name or a session name, to an e-mail
   or a Slack user ID;
2. an assumed-role (SSO) session whose name is an e-mail address, as IAM Identity Center
   names its sessions;
3. the IAM user's tags (`owner_tags`, default `slack`, `email`, `owner`): `iam:ListUserTags`
   in the finding's account, through the read-only role.

An e-mail becomes a Slack user through `users.lookupByEmail`. Lookups are cached for one
resolver (one delivery cycle); a failed lookup says why and is never cached as an answer.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from slack_sdk.errors import SlackApiError, SlackClientError

from bot.settings import EMAIL, SLACK_ID, Settings
from checks.awserror import AwsReadFailed
from checks.hunt import IAM_REGION
from checks.iam import fetch_user_tags
from checks.model import Finding
from checks.sessions import AssumeRoleFailed

log = logging.getLogger(__name__)


class ClientSource(Protocol):
    def client(self, account_id: str, service: str, region: str) -> Any: ...


@dataclass(frozen=True)
class Person:
    """A Slack user (None: not found) and how keyhunt knows it, or why it does not."""

    slack_user: str | None
    via: str


def session_name(arn: str | None) -> str | None:
    """The session of an assumed-role ARN (…:assumed-role/ROLE/SESSION), else None."""
    if not arn or ":assumed-role/" not in arn:
        return None
    parts = arn.split(":assumed-role/", 1)[1].split("/")
    return parts[-1] if len(parts) >= 2 and parts[-1] else None


def person_reference(value: str) -> str | None:
    """A tag or mapping value that names a person exactly: an e-mail or a Slack user ID."""
    text = value.strip()
    if EMAIL.match(text):
        return text.lower()
    if SLACK_ID.match(text) and text[0] in "UW":
        return text
    return None


def actor_keys(finding: Finding) -> list[str]:
    """What the config's mapping may name the actor by: ARN, session name, user name."""
    actor = finding.event.actor
    keys = [actor.arn, session_name(actor.arn), actor.name]
    return [k for k in dict.fromkeys(keys) if k]


class OwnerResolver:
    """Resolves the people of findings; one per delivery cycle (its caches are per cycle)."""

    def __init__(
        self,
        settings: Settings,
        clients: ClientSource | None,
        slack: Any,
        on_error: Callable[[str], None] = lambda _: None,
    ) -> None:
        self.settings = settings
        self.clients = clients
        self.slack = slack
        self.mapping = dict(settings.owners)
        self.on_error = on_error
        self.asked: Counter[str] = Counter()  # questions put to each person this cycle
        self._emails: dict[str, str | None] = {}
        self._tags: dict[tuple[str, str], dict[str, str] | None] = {}

    def actor(self, finding: Finding) -> Person:
        actor = finding.event.actor
        if actor.type == "Root":
            return Person(None, "the root user is no one person")
        for key in actor_keys(finding):
            if key in self.mapping:
                return self._person(self.mapping[key], "keyhunt's owners mapping")
        session = session_name(actor.arn)
        if session and EMAIL.match(session):
            return self._person(session, "the SSO session name")
        if actor.type == "IAMUser" and actor.name:
            account = actor.account_id or finding.account_id
            return self._tagged(account, actor.name)
        return Person(None, "no owners mapping, e-mail session name or IAM tag names them")

    def target(self, finding: Finding) -> Person:
        user = finding.event.target_user
        if not user or user == "root":
            return Person(None, "no IAM user")
        if user in self.mapping:
            return self._person(self.mapping[user], "keyhunt's owners mapping")
        return self._tagged(finding.searched_account, user)

    # -- sources ---------------------------------------------------------------------------
    def _tagged(self, account: str | None, user: str) -> Person:
        if self.clients is None or not account:
            return Person(None, "IAM tags not read")
        key = (account, user)
        if key not in self._tags:
            self._tags[key] = self._read_tags(account, user)
        tags = self._tags[key]
        if tags is None:
            return Person(None, f"could not read {user}'s IAM tags")
        for name in self.settings.owner_tags:
            reference = person_reference(tags.get(name, ""))
            if reference:
                return self._person(reference, f"IAM tag {name} on {user}")
        return Person(None, f"no {'/'.join(self.settings.owner_tags)} tag on {user}")

    def _read_tags(self, account: str, user: str) -> dict[str, str] | None:
        assert self.clients is not None
        try:
            return fetch_user_tags(self.clients.client(account, "iam", IAM_REGION), user)
        except AwsReadFailed as exc:
            if exc.code == "NoSuchEntity":
                return {}
            self.on_error(f"ListUserTags: {exc.code}")
        except AssumeRoleFailed as exc:
            self.on_error(f"AssumeRole: {exc.code}")
        except Exception as exc:  # noqa: BLE001 - resolving people is best effort
            self.on_error(type(exc).__name__)
        return None

    def _person(self, reference: str, via: str) -> Person:
        if SLACK_ID.match(reference) and "@" not in reference:
            return Person(reference, via)
        email = reference.lower()
        if email not in self._emails:
            self._emails[email] = self._lookup(email)
        user = self._emails[email]
        if user is None:
            return Person(None, f"{via} names an e-mail Slack does not know")
        return Person(user, via)

    def _lookup(self, email: str) -> str | None:
        try:
            answer = self.slack.users_lookupByEmail(email=email)
        except SlackApiError as exc:
            if exc.response.get("error") != "users_not_found":
                self.on_error(f"users.lookupByEmail: {exc.response.get('error')}")
            return None
        except (SlackClientError, OSError) as exc:
            self.on_error(f"users.lookupByEmail: {type(exc).__name__}")
            return None
        user = (answer.get("user") or {}).get("id")
        return str(user) if user and SLACK_ID.match(str(user)) else None
