"""checks.eventbridge: a queue message to a CreateAccessKey event, or a named refusal. Pure."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from checks.classify import classify
from checks.eventbridge import MAX_BODY, PoisonMessage, read_message
from checks.model import Target
from checks.parse import parse_record
from keyhunt_dev import records as r

NOW = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
MEMBER = "222222222222"


def record(**changes: Any) -> dict[str, Any]:
    base = r.create_access_key(
        r.iam_user(MEMBER, "alice"), MEMBER, NOW, user="bob", new_key="AKIAEXAMPLENEWKEY001"
    )
    return {**base, **changes}


def envelope(detail: Any, **changes: Any) -> str:
    body = {
        "version": "0",
        "id": "eb-1",
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.iam",
        "account": MEMBER,
        "time": "2026-12-07T08:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": detail,
    }
    return json.dumps({**body, **changes})


def test_the_detail_is_read_by_the_hunts_parser_and_classified_alike() -> None:
    detail = record()
    queued = read_message(envelope(detail))
    assert queued.target == Target(MEMBER, "us-east-1")
    assert queued.event == parse_record(json.dumps(detail))
    assert classify(queued.event, target=queued.target).reasons == ("key_for_other_user",)


def test_the_records_account_wins_and_the_envelope_fills_in() -> None:
    assert read_message(envelope(record(), account="333333333333")).target == Target(
        MEMBER, "us-east-1"
    )
    unsaid = {k: v for k, v in record().items() if k != "recipientAccountId"}
    assert read_message(envelope(unsaid)).target == Target(MEMBER, "us-east-1")
    bare = {"eventName": "CreateAccessKey", "eventID": "e-1", "eventTime": "2026-12-07T08:00:00Z"}
    assert read_message(envelope(bare)).target == Target(MEMBER, "us-east-1")
    assert read_message(envelope(bare, account="not-an-id")).target is None
    odd_region = read_message(envelope(record(), region="../../evil"))
    assert odd_region.target == Target(MEMBER, "us-east-1")


def test_a_record_read_in_part_is_still_a_finding_with_a_stable_id() -> None:
    detail = record(userIdentity="<!channel>", eventID=None)
    first, again = read_message(envelope(detail)), read_message(envelope(detail))
    assert first.event.problems
    assert first.event.event_id == again.event.event_id  # a redelivery de-duplicates
    assert "malformed" in classify(first.event).reasons


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (None, "not text"),
        ("", "not JSON"),
        ("not json {", "not JSON"),
        ("[" * 150_000 + "]" * 150_000, "over"),
        ("[" * 50_000 + "]" * 50_000, "not JSON"),  # too deep for the decoder
        ('"a string"', "not a JSON object"),
        (envelope(record(), source="aws.s3"), "not an EventBridge"),
        (envelope(record(), **{"detail-type": "Object Created"}), "not an EventBridge"),
        (envelope("<@U0BOSS> a string"), "no CloudTrail record"),
        (envelope(record(eventName="DeleteAccessKey")), "not a CreateAccessKey"),
        (envelope(record(eventName=["CreateAccessKey"])), "not a CreateAccessKey"),
    ],
)
def test_unusable_messages_are_refused_by_name_without_quoting_them(body: Any, why: str) -> None:
    with pytest.raises(PoisonMessage, match=why) as refused:
        read_message(body)
    assert "U0BOSS" not in str(refused.value)
    assert len(str(refused.value)) < 200
    assert MAX_BODY == 256 * 1024
