"""User-configured suppressions: known-good key creation that should not page anyone.

A suppression lists one or more conditions; all must hold. A suppressed finding keeps its
severity and gains the reason `suppressed`: hunts still show it, Slack alerts do not.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from checks.model import KeyEvent, Target, is_account_id

_FIELDS = ("actor_arn", "target_user", "account", "user_agent", "source_network", "comment")


@dataclass(frozen=True, slots=True)
class Suppression:
    comment: str
    actor_arn: str | None = None  # glob, e.g. arn:aws:sts::*:assumed-role/Deployer/*
    target_user: str | None = None  # exact IAM user name
    account: str | None = None  # exact 12-digit account ID
    user_agent: str | None = None  # glob
    source_network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None

    def matches(self, event: KeyEvent, target: Target | None = None) -> bool:
        account = event.account_id or (target.account_id if target else None)
        checks = (
            self.actor_arn is None or _glob(event.actor.arn, self.actor_arn),
            self.target_user is None
            or (event.target_user or "").casefold() == self.target_user.casefold(),
            self.account is None or account == self.account,
            self.user_agent is None or _glob(event.user_agent, self.user_agent),
            self.source_network is None or _in_network(event.source_ip, self.source_network),
        )
        return all(checks)


def matching_suppression(
    event: KeyEvent, suppressions: Sequence[Suppression], target: Target | None = None
) -> Suppression | None:
    return next((s for s in suppressions if s.matches(event, target)), None)


def parse_suppression(entry: Mapping[str, Any], where: str) -> Suppression:
    """Build one suppression from config, raising ValueError that names the bad key."""
    unknown = sorted(set(entry) - set(_FIELDS))
    if unknown:
        raise ValueError(f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(_FIELDS)})")
    values: dict[str, str] = {}
    for key in _FIELDS:
        value = entry.get(key)
        if value is None:
            continue
        if key == "account" and isinstance(value, int) and not isinstance(value, bool):
            value = str(value).zfill(12)  # an unquoted account ID in YAML is a number
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{where}.{key}: must be a non-empty string")
        values[key] = value.strip()
    if not values.get("comment"):
        raise ValueError(f"{where}.comment: say why this is suppressed")
    if len(values) == 1:
        raise ValueError(f"{where}: needs at least one condition besides comment")
    anchors = ("actor_arn", "target_user", "account", "source_network")
    if "user_agent" in values and not any(key in values for key in anchors):
        # The caller writes its own user agent: alone it would let an attacker copy it.
        raise ValueError(
            f"{where}.user_agent: the caller chooses its user agent, so combine it with "
            "actor_arn, target_user, account or source_network"
        )
    network = None
    if "source_network" in values:
        try:
            network = ipaddress.ip_network(values["source_network"], strict=False)
        except ValueError:
            raise ValueError(
                f"{where}.source_network: {values['source_network']!r} is not a CIDR"
            ) from None
    account = values.get("account")
    if account is not None and not is_account_id(account):
        raise ValueError(f"{where}.account: {account!r} is not a 12-digit account ID")
    return Suppression(
        comment=values["comment"],
        actor_arn=values.get("actor_arn"),
        target_user=values.get("target_user"),
        account=account,
        user_agent=values.get("user_agent"),
        source_network=network,
    )


def _glob(value: str | None, pattern: str) -> bool:
    return value is not None and fnmatchcase(value, pattern)


def _in_network(
    address: str | None, network: ipaddress.IPv4Network | ipaddress.IPv6Network
) -> bool:
    if address is None:
        return False
    try:
        return ipaddress.ip_address(address) in network
    except ValueError:
        return False  # service names such as cloudformation.amazonaws.com
