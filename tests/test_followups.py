"""What a new key did since, as it changes its alert: ⚠ lines, raised severity, updated in place.

Pure parts (checks.followup over checks.danger) and the whole loop through the fakes: a poll
stores and posts a medium self-service key; the key then attaches AdministratorAccess; the next
poll reads the key's calls (one LookupEvents by AccessKeyId), raises the finding to high and
updates the alert in place, once.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.render import render_alert, render_investigation
from bot.store import Store
from bot.stored import Message, StoredFinding, Triage
from checks.followup import followups_of, raised_severity
from checks.investigate import KeyReport
from checks.model import Severity, Target, Window
from checks.parse import parse_activity
from keyhunt_dev import records as r
from tests.slackbot import (
    CALLER,
    CHANNEL,
    REGION,
    BotFactory,
    finding_of,
    mrkdwn_texts,
    new_key_id,
    now_utc,
    root_key,
    self_key,
)

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
ADMIN = "arn:aws:iam::aws:policy/AdministratorAccess"


def called(key: str, user: str, when: datetime, source: str, name: str, **details: Any) -> dict:
    """A call IAM user `user` made with `key` in CALLER's account."""
    return r.api_call(
        r.iam_user(CALLER, user, access_key=key), CALLER, when, source, name, **details
    )


def attach(key: str, user: str, when: datetime, to: str, ip: str = "198.51.100.7") -> dict:
    return called(
        key,
        user,
        when,
        "iam.amazonaws.com",
        "AttachUserPolicy",
        ip=ip,
        read_only=False,
        request={"userName": to, "policyArn": ADMIN},
    )


def calls(*records: dict) -> list:
    return [parse_activity(json.dumps(record)) for record in records]


def test_a_call_that_matters_becomes_a_followup_and_raises_to_high() -> None:
    key = new_key_id()
    finding = finding_of(self_key(NOW, user="bob", key=key))
    assert finding.severity is Severity.MEDIUM
    found = followups_of(finding, calls(attach(key, "bob", NOW + timedelta(minutes=5), "bob")))
    assert found == ("attached AdministratorAccess to bob",)
    assert raised_severity(finding, found) is Severity.HIGH
    assert raised_severity(finding, ()) is Severity.MEDIUM
    root = finding_of(root_key(NOW))
    assert raised_severity(root, found) is Severity.CRITICAL  # never lowered


def test_an_ordinary_call_is_no_followup() -> None:
    key = new_key_id()
    finding = finding_of(self_key(NOW, user="bob", key=key))
    listing = r.api_call(
        r.iam_user(CALLER, "bob", access_key=key), CALLER, NOW, "s3.amazonaws.com", "ListBuckets"
    )
    listing["sourceIPAddress"] = finding.event.source_ip
    assert followups_of(finding, calls(listing)) == ()


def test_many_calls_from_one_new_address_are_one_line() -> None:
    key = new_key_id()
    finding = finding_of(self_key(NOW, user="bob", key=key))
    elsewhere = [
        r.api_call(
            r.iam_user(CALLER, "bob", access_key=key),
            CALLER,
            NOW + timedelta(minutes=n),
            "s3.amazonaws.com",
            name,
            ip="192.0.2.99",
        )
        for n, name in enumerate(["ListBuckets", "GetObject", "ListObjects"], 1)
    ]
    found = followups_of(finding, calls(*elsewhere))
    assert len(found) == 1
    assert "192.0.2.99" in found[0]


def _stored(finding: object) -> StoredFinding:
    return StoredFinding(
        "evt",
        finding,
        Triage("open", None, None),
        Message("posted", 1, CHANNEL, "1.2", None, None, None),
        NOW,
    )  # type: ignore[arg-type]


def test_the_alert_says_it_first_and_hostile_names_stay_text() -> None:
    finding = finding_of(self_key(NOW, user="bob"))
    from dataclasses import replace

    marked = replace(finding, followups=("attached AdministratorAccess to <!channel> *x*", "y"))
    _, blocks = render_alert(_stored(marked), NOW)
    first = mrkdwn_texts(blocks)[0]
    assert "⚠ *the new key has since attached AdministratorAccess to &lt;!channel&gt; x*" in first
    assert "(and 1 more call that matters)" in first
    assert "<!channel>" not in json.dumps(blocks)


def test_the_investigation_puts_the_calls_that_matter_first() -> None:
    key = new_key_id()
    creation = finding_of(self_key(NOW, user="bob", key=key))
    listing = called(
        key,
        "bob",
        NOW + timedelta(minutes=1),
        "s3.amazonaws.com",
        "ListBuckets",
        ip=str(creation.event.source_ip),
    )
    activity = calls(listing, attach(key, "bob", NOW + timedelta(minutes=5), "bob"))
    report = KeyReport(key, Window(NOW, NOW + timedelta(hours=1)), [Target(CALLER, REGION)])
    report.creation, report.activity = creation, activity
    _, blocks = render_investigation(report, NOW + timedelta(hours=1))
    lines = "\n".join(mrkdwn_texts(blocks)).splitlines()
    start = lines.index("⚠ *1 call that matters*, worst first:")
    assert "`iam:AttachUserPolicy`" in lines[start + 1]
    assert lines[start + 1].endswith("⚠ *attached AdministratorAccess to bob*")
    assert lines[start + 2] == "Every other call, in time order:"
    assert "`s3:ListBuckets`" in lines[start + 3]


def test_a_later_poll_raises_the_posted_alert_in_place_once(make_bot: BotFactory) -> None:
    bot = make_bot()
    key, made = new_key_id(), now_utc() - timedelta(hours=1)
    (event_id,) = make_bot.seed(self_key(made, user="erin", key=key))
    bot.poll()
    posted = bot.store.get(event_id)
    assert posted is not None
    assert posted.message.ts
    assert posted.finding.severity is Severity.MEDIUM
    assert not make_bot.slack.calls_to("chat.update")

    make_bot.seed(attach(key, "erin", made + timedelta(minutes=10), "erin"))
    outcome = bot.poll()

    assert outcome.followed_up == 1
    raised = bot.store.get(event_id)
    assert raised is not None
    assert raised.finding.severity is Severity.HIGH
    assert raised.finding.followups == ("attached AdministratorAccess to erin",)
    assert raised.triage.status == "open"  # what people decided is not touched
    (update,) = make_bot.slack.calls_to("chat.update")
    assert update.args["ts"] == posted.message.ts
    assert update.args["text"].startswith("🔴 HIGH")
    shown = "\n".join(mrkdwn_texts(make_bot.slack.messages[CHANNEL][posted.message.ts].blocks))
    assert "⚠ *the new key has since attached AdministratorAccess to erin*" in shown

    assert bot.poll().followed_up == 0  # nothing new: no second update
    assert len(make_bot.slack.calls_to("chat.update")) == 1


def test_a_poll_follows_a_key_into_every_configured_region_and_redraws_once(
    make_bot: BotFactory,
) -> None:
    """A key's IAM calls are recorded in us-east-1, but turning GuardDuty off in eu-west-1 is
    recorded in eu-west-1 only: the poll reads each configured region, and the alert,
    raised by both, is redrawn once."""
    bot = make_bot(KEYHUNT_REGIONS="eu-west-1")  # us-east-1 is read whatever the setting
    key, made = new_key_id(), now_utc() - timedelta(hours=1)
    (event_id,) = make_bot.seed(self_key(made, user="erin", key=key))
    bot.poll()
    make_bot.seed(attach(key, "erin", made + timedelta(minutes=10), "erin"))
    tamper = called(
        key,
        "erin",
        made + timedelta(minutes=12),
        "guardduty.amazonaws.com",
        "DeleteDetector",
        region="eu-west-1",
        read_only=False,
        request={"detectorId": "12abc34d567e8fa901bc2d34e56789f0"},
    )
    make_bot.aws.add_events(CALLER, "eu-west-1", [tamper])

    outcome = bot.poll()

    assert outcome.followed_up == 1
    raised = bot.store.get(event_id)
    assert raised is not None
    assert raised.finding.severity is Severity.HIGH  # follow-ups raise to high (checks.followup)
    assert set(raised.finding.followups) == {
        "attached AdministratorAccess to erin",
        "deleted GuardDuty detector 12abc34d567e8fa901bc2d34e56789f0",
    }
    assert len(make_bot.slack.calls_to("chat.update")) == 1
    assert bot.poll().followed_up == 0


def test_a_poll_reads_a_few_keys_per_target_and_the_rest_in_turn(make_bot: BotFactory) -> None:
    """A burst of new keys never makes the poll wait on the target's 2 calls/s: at most
    FOLLOW_UPS_PER_TARGET keys a poll, every key read within a few polls."""
    from bot.poller import FOLLOW_UPS_PER_TARGET

    bot = make_bot()
    made = now_utc() - timedelta(hours=1)
    keys = [new_key_id() for _ in range(FOLLOW_UPS_PER_TARGET + 2)]
    make_bot.seed(*(self_key(made, key=key) for key in keys))

    def followed(outcome_calls: list) -> set[str]:
        return {
            c.params["LookupAttributes"][0]["AttributeValue"]
            for c in outcome_calls
            if c.params.get("LookupAttributes", [{}])[0].get("AttributeKey") == "AccessKeyId"
        }

    bot.poll()  # stores and posts them; their calls are read from the next poll on
    assert followed(make_bot.aws.calls) == set()
    make_bot.aws.clear_calls()
    bot.poll()
    first = followed(make_bot.aws.calls)
    assert len(first) == FOLLOW_UPS_PER_TARGET
    make_bot.aws.clear_calls()
    bot.poll()
    assert first | followed(make_bot.aws.calls) == set(keys)


def test_the_store_adds_followups_once_and_never_lowers_a_severity(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'k.db'}")
    store.migrate()
    try:
        root = finding_of(root_key(NOW))
        store.add_findings([root])
        event_id = root.event.event_id
        assert store.add_followups(event_id, ("created user eve",), Severity.HIGH)
        assert not store.add_followups(event_id, ("created user eve",), Severity.HIGH)
        assert store.add_followups(event_id, ("created user eve", "x"), Severity.LOW)
        kept = store.get(event_id)
        assert kept is not None
        assert kept.finding.severity is Severity.CRITICAL
        assert kept.finding.followups == ("created user eve", "x")
        assert kept.triage.status == "open"
        assert not store.add_followups("no-such-event", ("y",), Severity.HIGH)
    finally:
        store.close()
