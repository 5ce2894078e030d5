"""IAM reads that explain a finding: the target user's keys, and one key's last use."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from checks.awserror import AwsReadFailed, error_of
from checks.model import KeyInfo


@dataclass(frozen=True, slots=True)
class KeyLastUse:
    access_key_id: str
    user_name: str | None
    last_used: datetime | None
    service: str | None
    region: str | None


def fetch_user_keys(iam: Any, user_name: str) -> list[KeyInfo]:
    """One ListAccessKeys call (a user has at most two keys, so one page holds them all)."""
    page = _call(iam.list_access_keys, UserName=user_name)
    return [
        KeyInfo(
            access_key_id=str(item["AccessKeyId"]),
            status=str(item.get("Status", "")),
            create_date=_utc(item.get("CreateDate")),
        )
        for item in page.get("AccessKeyMetadata", [])
    ]


def fetch_key_last_use(iam: Any, access_key_id: str) -> KeyLastUse:
    page = _call(iam.get_access_key_last_used, AccessKeyId=access_key_id)
    used = page.get("AccessKeyLastUsed", {})
    service = used.get("ServiceName")
    region = used.get("Region")
    return KeyLastUse(
        access_key_id=access_key_id,
        user_name=page.get("UserName"),
        last_used=_utc(used.get("LastUsedDate")),
        service=None if service in (None, "N/A") else str(service),
        region=None if region in (None, "N/A") else str(region),
    )


def _call(method: Any, **params: Any) -> dict[str, Any]:
    try:
        result: dict[str, Any] = method(**params)
        return result
    except ClientError as exc:
        raise AwsReadFailed(*error_of(exc)) from None
    except BotoCoreError as exc:
        raise AwsReadFailed("EndpointError", str(exc)) from None


def _utc(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return None


def fetch_account_alias(iam: Any) -> str | None:
    """The account's alias (an account has at most one), or None when it has none."""
    aliases = iam.list_account_aliases().get("AccountAliases") or []
    return str(aliases[0]) if aliases else None


def fetch_user_tags(iam: Any, user_name: str) -> dict[str, str]:
    """The IAM user's tags (one ListUserTags page: a user has at most 50 tags)."""
    page = _call(iam.list_user_tags, UserName=user_name)
    return {str(t.get("Key")): str(t.get("Value", "")) for t in page.get("Tags", [])}
