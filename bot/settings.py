"""Settings from YAML plus environment (the environment wins), validated once at start-up.

An unknown key, a bad duration, a malformed account ID or region is a ConfigError that names
the key and what is allowed; nothing falls back to a default silently.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time, timedelta
from pathlib import Path
from typing import Any

import yaml

from checks.model import is_account_id
from checks.suppress import Suppression, parse_suppression
from checks.timeutil import parse_duration

DEFAULT_CONFIG_PATH = Path("config/keyhunt.yaml")
REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")
SLACK_ID = re.compile(r"^[A-Z0-9]{2,20}$")
RECONCILE_POLL_MINUTES = 60  # the poll's default period when an SQS queue is configured
RESPONSE_ACTIONS = ("deactivate",)
EMAIL = re.compile(r"^[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})+$")


class ConfigError(ValueError):
    """A configuration problem; the message names the key and what is allowed."""


class Secret(str):
    """A string that never shows itself in repr() or logs by accident."""

    def __repr__(self) -> str:
        return "Secret('***')" if self else "Secret('')"


NO_SECRET = Secret("")


@dataclass(frozen=True)
class Settings:
    """Every setting; `poll_interval` is the one to read for the poll period."""

    slack_bot_token: Secret = NO_SECRET
    slack_signing_secret: Secret = NO_SECRET
    slack_app_token: Secret = NO_SECRET
    slack_api_url: str = "https://slack.com/api/"
    channel: str = ""
    accounts: tuple[str, ...] = ()
    # (account ID, name) for the accounts the config names ("prod"); others are named by the
    # Organization or their alias.
    account_names: tuple[tuple[str, str], ...] = ()
    use_organization: bool = False
    role_name: str = "KeyHuntReadOnly"
    external_id: Secret = NO_SECRET
    regions: tuple[str, ...] = ("us-east-1",)
    database_url: str = "sqlite:///keyhunt.db"
    triagers: tuple[str, ...] = ()
    poll_minutes: int = 5
    # Seconds-level override of poll_minutes, for tests and demos of the scheduler only.
    poll_seconds: int | None = None
    backfill: timedelta = timedelta(hours=24)
    log_format: str = "text"
    # Beyond the CONTRACT's environment: tuning with safe defaults.
    poll_overlap: timedelta = timedelta(minutes=20)
    rotation_window: timedelta = timedelta(hours=24)
    burst_threshold: int = 10
    posts_per_second: float = 0.9  # Slack allows about one post a second per channel
    digest_time: time = time(9, 0)
    enrich: bool = True
    follow_up: bool = True  # read open keys' calls at every poll (checks.danger)
    max_workers: int = 32
    rate_per_target: float = 2.0
    throttle_deadline_seconds: float = 120.0
    port: int = 3000
    suppressions: tuple[Suppression, ...] = field(default=())
    # Real time (bot.realtime): the SQS queue EventBridge fills with CreateAccessKey events;
    # with one, the poll becomes the reconciler (hourly unless poll_minutes says otherwise).
    sqs_queue_url: str = ""
    queue_wait_seconds: int = 20  # SQS long polling: how long one receive waits for messages
    # Asking the owner (bot.owners, bot.asking): the IAM user tags that name a person, the
    # config's own mapping (ARN, user or session name -> e-mail or Slack user ID), which
    # severities are asked, and how long an unanswered question waits before escalating.
    owner_tags: tuple[str, ...] = ("slack", "email", "owner")
    owners: tuple[tuple[str, str], ...] = ()
    ask_severities: tuple[str, ...] = ("critical", "high", "medium")
    ask_timeout: timedelta = timedelta(minutes=30)
    # Who is mentioned on an escalation and may use the response actions (opt-in).
    responders: tuple[str, ...] = ()
    response_actions: tuple[str, ...] = ()
    responder_role_name: str = "KeyHuntResponder"

    @property
    def poll_interval(self) -> timedelta:
        if self.poll_seconds is not None:
            return timedelta(seconds=self.poll_seconds)
        return timedelta(minutes=self.poll_minutes)


# key -> (environment variable, parser). YAML uses the key; the environment the variable.
def _text(value: str, key: str) -> str:
    return value.strip()


def _secret(value: str, key: str) -> Secret:
    return Secret(value.strip())


def _in_range(kind: type[int] | type[float], low: float, high: float) -> Any:
    """A parser of whole numbers (`int`) or numbers (`float`) between low and high."""
    noun = "a whole number" if kind is int else "a number"

    def parse(value: str, key: str) -> int | float:
        try:
            number = kind(str(value).strip())
        except ValueError:
            raise ConfigError(f"{key}: {value!r} is not {noun}") from None
        if not low <= number <= high:
            raise ConfigError(f"{key}: {number} is out of range ({low} to {high})")
        return number

    return parse


def _int_range(low: int, high: int) -> Any:
    return _in_range(int, low, high)


def _float_range(low: float, high: float) -> Any:
    return _in_range(float, low, high)


def _duration(value: str, key: str) -> timedelta:
    try:
        return parse_duration(str(value))
    except ValueError as exc:
        raise ConfigError(f"{key}: {exc}") from None


def _list(value: Any) -> list[str]:
    if isinstance(value, list | tuple):
        return [str(v).strip() for v in value if str(v).strip()]
    return [v.strip() for v in str(value).split(",") if v.strip()]


def _accounts(value: Any, key: str) -> tuple[tuple[str, str | None], ...]:
    """Account IDs, each with the name the team calls it, when given: a YAML mapping
    `{222222222222: prod}`, list items `222222222222: prod`, or `222222222222=prod` (env)."""
    pairs: list[tuple[str, str | None]] = []
    items: list[Any] = list(value.items()) if isinstance(value, dict) else _entries(value)
    for item in items:
        if isinstance(item, dict):
            pairs.extend((str(k).strip(), _account_name(v, key)) for k, v in item.items())
        elif isinstance(item, tuple):
            pairs.append((str(item[0]).strip(), _account_name(item[1], key)))
        else:
            account, _, name = str(item).partition("=")
            pairs.append((account.strip(), _account_name(name, key)))
    for account, _ in pairs:
        if account != "organization" and not is_account_id(account):
            raise ConfigError(
                f"{key}: {account!r} is not a 12-digit account ID (or the word 'organization'; "
                "in YAML, quote an ID that starts with 0)"
            )
    if any(a == "organization" for a, _ in pairs) and len(pairs) > 1:
        raise ConfigError(f"{key}: 'organization' cannot be combined with account IDs")
    return tuple(dict(pairs).items())


def _entries(value: Any) -> list[Any]:
    if isinstance(value, list | tuple):
        return [v for v in value if isinstance(v, dict) or str(v).strip()]
    return _list(value)


def _account_name(value: Any, key: str) -> str | None:
    name = "" if value is None else str(value).strip()
    if len(name) > 64 or any(not c.isprintable() for c in name):
        raise ConfigError(f"{key}: account name {name[:64]!r} is over 64 characters or unprintable")
    return name or None


def _regions(value: Any, key: str) -> tuple[str, ...]:
    items = _list(value)
    if not items:
        raise ConfigError(f"{key}: name at least one region, e.g. us-east-1")
    for item in items:
        if not REGION.match(item):
            raise ConfigError(f"{key}: {item!r} is not an AWS region name such as us-east-1")
    return tuple(dict.fromkeys(items))


def _slack_ids(value: Any, key: str) -> tuple[str, ...]:
    items = _list(value)
    for item in items:
        if not SLACK_ID.match(item):
            raise ConfigError(f"{key}: {item!r} is not a Slack user ID such as U012ABCDEF")
    return tuple(items)


def _channel(value: Any, key: str) -> str:
    text = str(value).strip()
    if text and not SLACK_ID.match(text):
        raise ConfigError(f"{key}: {text!r} is not a Slack channel ID such as C012ABCDEF")
    return text


def _choice(*allowed: str) -> Any:
    def parse(value: str, key: str) -> str:
        text = str(value).strip().lower()
        if text not in allowed:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(allowed)}")
        return text

    return parse


def _bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{key}: {value!r} is not true or false")


def _clock(value: Any, key: str) -> time:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 24 * 60:
        # YAML 1.1 reads an unquoted 9:00 as sexagesimal 540 (minutes): take it as meant.
        return time(value // 60, value % 60)
    text = str(value).strip()
    match = re.match(r"^(\d{1,2}):(\d{2})$", text)
    if not match or int(match.group(1)) > 23 or int(match.group(2)) > 59:
        raise ConfigError(f"{key}: {value!r} is not a UTC time of day such as 09:00")
    return time(int(match.group(1)), int(match.group(2)))


def _severities(value: Any, key: str) -> tuple[str, ...]:
    allowed = ("critical", "high", "medium", "low", "info")
    items = [item.lower() for item in _list(value)]
    if items == ["none"]:
        return ()
    for item in items:
        if item not in allowed:
            raise ConfigError(f"{key}: {item!r} is not a severity ({', '.join(allowed)}, or none)")
    return tuple(dict.fromkeys(items))


def _actions(value: Any, key: str) -> tuple[str, ...]:
    items = [item.lower() for item in _list(value)]
    for item in items:
        if item not in RESPONSE_ACTIONS:
            raise ConfigError(
                f"{key}: {item!r} is not a response action ({', '.join(RESPONSE_ACTIONS)})"
            )
    return tuple(dict.fromkeys(items))


def _tag_keys(value: Any, key: str) -> tuple[str, ...]:
    items = _list(value)
    for item in items:
        if not re.match(r"^[\w.:/=+@-]{1,128}$", item):
            raise ConfigError(f"{key}: {item!r} is not an IAM tag key")
    return tuple(items)


def _queue_url(value: Any, key: str) -> str:
    text = str(value).strip()
    if text and not re.match(r"^https?://[^/\s]+/\d{12}/[\w-]{1,80}(\.fifo)?$", text):
        raise ConfigError(
            f"{key}: {text[:200]!r} is not an SQS queue URL such as "
            "https://sqs.us-east-1.amazonaws.com/111122223333/keyhunt-key-events"
        )
    return text


def _url(value: Any, key: str) -> str:
    text = str(value).strip()
    if not re.match(r"^https?://", text):
        raise ConfigError(f"{key}: {text!r} is not an http(s) URL")
    return text if text.endswith("/") else text + "/"


FIELDS: dict[str, tuple[str, Any]] = {
    "slack_bot_token": ("SLACK_BOT_TOKEN", _secret),
    "slack_signing_secret": ("SLACK_SIGNING_SECRET", _secret),
    "slack_app_token": ("SLACK_APP_TOKEN", _secret),
    "slack_api_url": ("SLACK_API_URL", _url),
    "channel": ("KEYHUNT_CHANNEL", _channel),
    "accounts": ("KEYHUNT_ACCOUNTS", _accounts),
    "role_name": ("KEYHUNT_ROLE_NAME", _text),
    "external_id": ("KEYHUNT_EXTERNAL_ID", _secret),
    "regions": ("KEYHUNT_REGIONS", _regions),
    "database_url": ("KEYHUNT_DATABASE_URL", _text),
    "triagers": ("KEYHUNT_TRIAGERS", _slack_ids),
    "poll_minutes": ("KEYHUNT_POLL_MINUTES", _int_range(1, 1440)),
    "poll_seconds": ("KEYHUNT_POLL_SECONDS", _int_range(5, 86400)),
    "backfill": ("KEYHUNT_BACKFILL", _duration),
    "log_format": ("KEYHUNT_LOG_FORMAT", _choice("text", "json")),
    "poll_overlap": ("KEYHUNT_POLL_OVERLAP", _duration),
    "rotation_window": ("KEYHUNT_ROTATION_WINDOW", _duration),
    "burst_threshold": ("KEYHUNT_BURST_THRESHOLD", _int_range(1, 1000)),
    "posts_per_second": ("KEYHUNT_POSTS_PER_SECOND", _float_range(0.1, 50.0)),
    "digest_time": ("KEYHUNT_DIGEST_TIME", _clock),
    "enrich": ("KEYHUNT_ENRICH", _bool),
    "follow_up": ("KEYHUNT_FOLLOW_UP", _bool),
    "max_workers": ("KEYHUNT_MAX_WORKERS", _int_range(1, 128)),
    "rate_per_target": ("KEYHUNT_RATE_PER_TARGET", _float_range(0.1, 2.0)),
    "throttle_deadline_seconds": ("KEYHUNT_THROTTLE_DEADLINE", _float_range(1, 3600)),
    "port": ("PORT", _int_range(1, 65535)),
    "sqs_queue_url": ("KEYHUNT_SQS_QUEUE_URL", _queue_url),
    "queue_wait_seconds": ("KEYHUNT_QUEUE_WAIT_SECONDS", _int_range(1, 20)),
    "owner_tags": ("KEYHUNT_OWNER_TAGS", _tag_keys),
    "ask_severities": ("KEYHUNT_ASK_SEVERITIES", _severities),
    "ask_timeout": ("KEYHUNT_ASK_TIMEOUT", _duration),
    "responders": ("KEYHUNT_RESPONDERS", _slack_ids),
    "response_actions": ("KEYHUNT_RESPONSE_ACTIONS", _actions),
    "responder_role_name": ("KEYHUNT_RESPONDER_ROLE", _text),
}
YAML_ONLY = ("suppressions", "owners")


def load_settings(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """YAML at `path` (or $KEYHUNT_CONFIG, or config/keyhunt.yaml if present), then env."""
    env = os.environ if environ is None else environ
    config_path = path or (Path(env["KEYHUNT_CONFIG"]) if env.get("KEYHUNT_CONFIG") else None)
    if config_path is None and DEFAULT_CONFIG_PATH.exists():
        config_path = DEFAULT_CONFIG_PATH
    raw: dict[str, Any] = _read_yaml(config_path) if config_path else {}

    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key in YAML_ONLY:
            continue
        if key not in FIELDS:
            allowed = ", ".join(sorted([*FIELDS, *YAML_ONLY]))
            raise ConfigError(f"unknown config key {key!r} in {config_path} (allowed: {allowed})")
        if value is None:
            continue
        values[key] = FIELDS[key][1](value, key)
    for key, (variable, parse) in FIELDS.items():
        if variable in env and env[variable].strip() != "":
            values[key] = parse(env[variable], variable)

    pairs = values.pop("accounts", ())
    if [a for a, _ in pairs] == ["organization"]:
        values["use_organization"] = True
        pairs = ()
    values["accounts"] = tuple(a for a, _ in pairs)
    values["account_names"] = tuple((a, n) for a, n in pairs if n)
    values["suppressions"] = _suppressions(raw.get("suppressions"))
    values["owners"] = _owners(raw.get("owners"))
    if values.get("sqs_queue_url") and "poll_minutes" not in values:
        # The queue brings keys in seconds; the poll only catches what it missed.
        values["poll_minutes"] = RECONCILE_POLL_MINUTES
    settings = Settings(**values)
    if settings.poll_overlap < timedelta(minutes=15):
        raise ConfigError("poll_overlap: at least 15m (CloudTrail delivers events late)")
    if settings.response_actions and not settings.responders:
        raise ConfigError(
            "response_actions: name the people allowed to use them in responders "
            "(KEYHUNT_RESPONDERS, Slack user IDs)"
        )
    return settings


def _owners(value: Any) -> tuple[tuple[str, str], ...]:
    """`owners:` maps who acted (an ARN, an IAM user name or a session name) to the person,
    by e-mail or Slack user ID. Exact keys only: nothing is matched by substring."""
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise ConfigError("owners: must be a mapping of ARN or name to e-mail or Slack user ID")
    pairs = []
    for who, person in value.items():
        name, target = str(who).strip(), str(person).strip()
        if not name or len(name) > 2048:
            raise ConfigError(f"owners: {name[:64]!r} is not an ARN or a name")
        if not (EMAIL.match(target) or SLACK_ID.match(target)):
            raise ConfigError(
                f"owners[{name[:64]}]: {target[:64]!r} is not an e-mail or a Slack user ID"
            )
        pairs.append((name, target))
    return tuple(pairs)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys to values")
    return {str(k): v for k, v in data.items()}


def _suppressions(value: Any) -> tuple[Suppression, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ConfigError("suppressions: must be a list of mappings")
    result = []
    for index, entry in enumerate(value):
        where = f"suppressions[{index}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: must be a mapping")
        try:
            result.append(parse_suppression(entry, where))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    return tuple(result)
