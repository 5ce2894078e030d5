"""The /keyhunt grammar (CONTRACT section 5). Pure: text in, a typed command or an error out."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from checks.investigate import validate_key_id
from checks.model import Severity, is_account_id
from checks.timeutil import parse_duration, parse_instant

IAM_NAME = re.compile(r"^[\w+=,.@-]{1,64}$")
ACTOR = re.compile(r"^[\w+=,.@:/-]{1,512}$")


class CommandError(ValueError):
    """Text the grammar cannot read; the message says what was wrong."""


@dataclass(frozen=True)
class Help:
    pass


@dataclass(frozen=True)
class Status:
    pass


@dataclass(frozen=True)
class KeyLookup:
    access_key_id: str


@dataclass(frozen=True)
class Hunt:
    last: timedelta | None = None
    since: datetime | None = None
    until: datetime | None = None
    user: str | None = None
    actor: str | None = None
    account: str | None = None
    min_severity: Severity | None = None


@dataclass(frozen=True)
class Snoozes:
    pass


@dataclass(frozen=True)
class Unsnooze:
    snooze_id: str


SNOOZE_ID = re.compile(r"^s[0-9a-f]{6}$")
Command = Help | Status | KeyLookup | Hunt | Snoozes | Unsnooze


def parse_command(text: str) -> Command:
    words = text.split()
    if not words or words[0].lower() in ("help", "usage", "?"):
        if len(words) > 1:
            raise CommandError(f"`help` takes nothing after it, got {words[1]!r}")
        return Help()
    head, rest = words[0].lower(), words[1:]
    if head == "status":
        if rest:
            raise CommandError("`status` takes nothing after it")
        return Status()
    if head == "key":
        if len(rest) != 1:
            raise CommandError("`key` takes exactly one access key ID")
        try:
            return KeyLookup(validate_key_id(rest[0]))
        except ValueError as exc:
            raise CommandError(str(exc)) from None
    if head == "snoozes":
        if rest:
            raise CommandError("`snoozes` takes nothing after it")
        return Snoozes()
    if head == "unsnooze":
        if len(rest) != 1 or not SNOOZE_ID.match(rest[0].lower()):
            raise CommandError("`unsnooze` takes one snooze ID, as `/keyhunt snoozes` lists it")
        return Unsnooze(rest[0].lower())
    if head in ("last", "since"):
        return _parse_hunt(words)
    raise CommandError(f"unknown command {words[0]!r}")


def _parse_hunt(words: list[str]) -> Hunt:
    options: dict[str, str] = {}
    allowed = ("last", "since", "until", "user", "actor", "account", "severity")
    if len(words) % 2:
        raise CommandError(f"{words[-1]!r} needs a value after it")
    for name, value in zip(words[::2], words[1::2], strict=True):
        key = name.lower()
        if key not in allowed:
            raise CommandError(f"unknown option {name!r} (allowed: {', '.join(allowed)})")
        if key in options:
            raise CommandError(f"{key!r} given twice")
        options[key] = value
    if "last" in options and ("since" in options or "until" in options):
        raise CommandError("use either `last` or `since`/`until`, not both")
    if "until" in options and "since" not in options:
        raise CommandError("`until` needs `since`")
    try:
        hunt = Hunt(
            last=parse_duration(options["last"]) if "last" in options else None,
            since=parse_instant(options["since"]) if "since" in options else None,
            until=parse_instant(options["until"]) if "until" in options else None,
            user=_checked(options.get("user"), IAM_NAME, "user"),
            actor=_checked(options.get("actor"), ACTOR, "actor"),
            account=_account(options.get("account")),
            min_severity=Severity.parse(options["severity"]) if "severity" in options else None,
        )
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    return hunt


def _account(value: str | None) -> str | None:
    if value is not None and not is_account_id(value):
        raise CommandError(f"account {value[:80]!r} is not valid")
    return value


def _checked(value: str | None, pattern: re.Pattern[str], name: str) -> str | None:
    if value is None:
        return None
    if not pattern.match(value):
        raise CommandError(f"{name} {value[:80]!r} is not valid")
    return value
