"""An SQS message from EventBridge, read as a CreateAccessKey event. Pure: no I/O.

EventBridge delivers each CloudTrail event inside its own envelope:

    {"version": "0", "id": "...", "detail-type": "AWS API Call via CloudTrail",
     "source": "aws.iam", "account": "222222222222", "region": "us-east-1", "time": "...",
     "resources": [], "detail": {<the CloudTrail record>}}

`detail` is the record LookupEvents would return as `CloudTrailEvent`, and it goes through
the same parser (checks.parse). A message that cannot become a CreateAccessKey event (not
JSON, another event, no record) is a PoisonMessage; the reason names what was wrong and never
quotes the body, which anyone able to send to the queue chooses.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from checks.model import KeyEvent, Target, is_account_id
from checks.parse import CREATE_ACCESS_KEY, MalformedRecord, parse_record

DETAIL_TYPE = "AWS API Call via CloudTrail"
SOURCE = "aws.iam"
# IAM is global: its CloudTrail events, and so the EventBridge rule, live in us-east-1.
IAM_REGION = "us-east-1"
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d{1,2}")
# SQS caps a message at 256 KiB; anything larger did not come from SQS as it is.
MAX_BODY = 256 * 1024


class PoisonMessage(ValueError):
    """A queue message that can never become a finding; the message says why."""


@dataclass(frozen=True, slots=True)
class QueuedEvent:
    """A CreateAccessKey event as the queue delivered it, and where it was recorded."""

    event: KeyEvent
    # The account (and region) the event was recorded in: where its rotation context is
    # read. None when neither the record nor the envelope names a valid account.
    target: Target | None


def read_message(body: object, read_at: datetime | None = None) -> QueuedEvent:
    """One SQS message body as a CreateAccessKey event; raises PoisonMessage."""
    if not isinstance(body, str):
        raise PoisonMessage("the body is not text")
    if len(body) > MAX_BODY:
        raise PoisonMessage(f"the body is over {MAX_BODY} characters")
    try:
        envelope: Any = json.loads(body)
    except (ValueError, RecursionError):
        raise PoisonMessage("the body is not JSON") from None
    if not isinstance(envelope, dict):
        raise PoisonMessage("the body is not a JSON object")
    if envelope.get("source") != SOURCE or envelope.get("detail-type") != DETAIL_TYPE:
        raise PoisonMessage(f"not an EventBridge '{DETAIL_TYPE}' event from {SOURCE}")
    detail = envelope.get("detail")
    if not isinstance(detail, dict):
        raise PoisonMessage("the envelope holds no CloudTrail record (detail)")
    if detail.get("eventName") != CREATE_ACCESS_KEY:
        raise PoisonMessage(f"the record is not a {CREATE_ACCESS_KEY} event")
    try:
        event = parse_record(detail, read_at=read_at)
    except MalformedRecord as exc:  # a CreateAccessKey object never is; kept for safety
        raise PoisonMessage(f"the record could not be read: {exc}") from None
    return QueuedEvent(event, _target(event, envelope))


def _target(event: KeyEvent, envelope: dict[str, Any]) -> Target | None:
    """The record's own account (recipientAccountId) first: it is what the hunt reports;
    the envelope's `account` (where EventBridge saw the event) otherwise."""
    account = event.account_id if event.account_id and is_account_id(event.account_id) else None
    if account is None:
        listed = envelope.get("account")
        account = listed if isinstance(listed, str) and is_account_id(listed) else None
    if account is None:
        return None
    region = envelope.get("region")
    if not (isinstance(region, str) and _REGION.fullmatch(region)):
        region = IAM_REGION
    return Target(account, region)
