"""Block Kit rendering as data: limits, escaping, what each message says. Pure functions."""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.render import (
    ACTION_EXPECTED,
    ACTION_INVESTIGATE,
    code,
    render_alert,
    render_burst,
    render_digest,
    render_hunt,
    render_investigation,
    render_status,
    render_usage,
    triage_buttons,
)
from bot.stored import POSTED, Message, PollRun, StoredFinding, TargetHealth, Triage
from bot.triage import EXPECTED_ROTATION, INVESTIGATING, OPEN, ButtonValue, decode_value
from checks.classify import classify
from checks.cloudtrail import parse_entry
from checks.iam import KeyLastUse
from checks.investigate import KeyReport
from checks.model import (
    ApiActivity,
    Finding,
    HuntResult,
    HuntStats,
    KeyInfo,
    KeyRetirement,
    Target,
    TargetError,
    Window,
)
from checks.record import from_stored
from keyhunt_dev import records as r
from tests.slack_tokens import date_token, without_date_tokens
from tests.slackbot import (
    CALLER,
    OTHER,
    REGION,
    SLACK_CONTROL,
    block_kit_problems,
    buttons_of,
    finding_of,
    key_for_other,
    mrkdwn_texts,
    new_key_id,
    outside_code_spans,
    root_key,
    self_key,
    text_objects,
)

NOW = datetime(2026, 11, 29, 14, 20, tzinfo=UTC)
WINDOW = Window(NOW - timedelta(hours=24), NOW)


def stored(
    finding: Finding,
    status: str = OPEN,
    decided_by: str | None = None,
    decided_at: datetime | None = None,
    stored_at: datetime = NOW,
) -> StoredFinding:
    """A finding as the store hands it back once posted (the typed record, no database)."""
    return StoredFinding(
        event_id=finding.event.event_id,
        finding=dataclasses.replace(finding, status=status),
        triage=Triage(status, decided_by, decided_at),
        message=Message(POSTED, 1, "C0ALERTS", "1700000000.000100"),
        stored_at=stored_at,
    )


def hunt_result(
    findings: list[Finding], errors: list[TargetError] | None = None, accounts: int = 1
) -> HuntResult:
    targets = [Target(a, REGION) for a in [CALLER, OTHER, "333333333333"][:accounts]]
    return HuntResult(WINDOW, targets, findings, errors or [], HuntStats())


def all_text(blocks: list[dict[str, Any]]) -> str:
    return "\n".join(mrkdwn_texts(blocks))


def assert_valid(text: str, blocks: list[dict[str, Any]]) -> None:
    assert text.strip()
    assert block_kit_problems(blocks) == []
    for obj in text_objects(blocks):
        if obj["type"] == "mrkdwn":
            assert obj["verbatim"] is True


# --------------------------------------------------------------------------- the alert


def test_alert_for_another_user_reads_like_the_mockup() -> None:
    finding = finding_of(key_for_other(NOW - timedelta(minutes=9), actor="alice", user="bob"))

    text, blocks = render_alert(stored(finding), NOW)

    assert text == "🔴 HIGH  alice created an access key for bob in 123456789012, us-east-1"
    shown = all_text(blocks)
    assert shown.startswith("*🔴 High — access key created for another user*\n`alice`")
    assert "|2026-11-29 14:11 UTC> (9 min ago)" in shown
    assert "*Why*  created for a different user" in shown
    assert f"event `{finding.event.event_id}` · keyhunt" in shown
    assert buttons_of(blocks) == ["Expected rotation", "Investigate"]
    assert_valid(text, blocks)


def test_alert_for_own_key_and_for_root() -> None:
    own_text, _ = render_alert(stored(finding_of(self_key(NOW, user="dave"))), NOW)
    root_text, root_blocks = render_alert(stored(finding_of(root_key(NOW))), NOW)

    assert own_text == ("🟠 MEDIUM  dave created their own access key in 123456789012, us-east-1")
    assert root_text.startswith("🚨 CRITICAL  root created their own access key")
    assert "root user created an access key" in all_text(root_blocks)


def mallory_denied() -> dict[str, Any]:
    """mallory trying to make a key for bob, refused."""
    return r.create_access_key(
        r.iam_user(CALLER, "mallory"),
        CALLER,
        NOW,
        user="bob",
        new_key=None,
        error=("AccessDenied", "User mallory is not authorized"),
    )


def test_alert_for_a_failed_call() -> None:
    text, blocks = render_alert(stored(finding_of(mallory_denied())), NOW)

    assert text.endswith(
        "mallory tried to create an access key for bob (AccessDenied) in 123456789012, us-east-1"
    )
    shown = all_text(blocks)
    assert "*New key*  none (the call failed)" in shown
    assert "*Error*  `AccessDenied`" in shown


def test_alert_shows_the_target_users_keys_when_known() -> None:
    key = new_key_id()
    finding = finding_of(key_for_other(NOW, actor="alice", user="bob", key=key))
    finding = Finding(
        finding.event,
        finding.severity,
        finding.reasons,
        target=finding.target,
        user_keys=(
            KeyInfo(key, "Active", NOW),
            KeyInfo("AKIAOLDOLDOLDOLD1234", "Active", NOW - timedelta(days=212)),
        ),
    )
    _, blocks = render_alert(stored(finding), NOW)

    shown = all_text(blocks)
    assert "*`bob`'s keys (IAM)*  2 active; other key AKIA…1234, active, 212 days old" in shown


def test_a_rotation_says_which_key_was_retired_and_when() -> None:
    key = new_key_id()
    old, gone = "AKIAOLDOLDOLDOLD1234", "AKIAGONEGONEGONE5678"
    made = NOW - timedelta(hours=4)
    finding = replace(
        finding_of(self_key(made, user="bob", key=key)),
        user_keys=(
            KeyInfo(key, "Active", made),
            KeyInfo(old, "Inactive", NOW - timedelta(days=212)),
        ),
        retired=(
            KeyRetirement(gone, "deleted", made - timedelta(minutes=30)),
            KeyRetirement(old, "deactivated", made + timedelta(minutes=10)),
        ),
    )
    _, blocks = render_alert(stored(finding), NOW)

    assert (
        "1 active; other key AKIA…1234, deactivated 10 min after the new key (3 h ago), "
        "212 days old; key AKIA…5678, deleted 30 min before the new key (4 h ago)"
    ) in all_text(blocks)


@pytest.mark.parametrize(
    ("status", "buttons"),
    [
        (OPEN, ["Expected rotation", "Investigate"]),
        (INVESTIGATING, ["Expected rotation"]),
        (EXPECTED_ROTATION, []),
    ],
)
def test_only_the_buttons_that_still_make_sense(status: str, buttons: list[str]) -> None:
    decided = None if status == OPEN else "U0CAROL"
    finding = stored(finding_of(root_key(NOW)), status, decided, NOW)

    text, blocks = render_alert(finding, NOW + timedelta(minutes=5))

    assert buttons_of(blocks) == buttons
    for element in (b for block in blocks if block["type"] == "actions" for b in block["elements"]):
        # the finding and the state the message was drawn in (bot.triage)
        assert decode_value(element["value"]) == ButtonValue(finding.event_id, status)
        assert len(element["value"]) <= 2000
        assert element["action_id"] in (ACTION_EXPECTED, ACTION_INVESTIGATE)
    assert_valid(text, blocks)


@pytest.mark.parametrize(
    ("record", "step"),
    [
        (root_key(NOW), "Root keys should not exist: delete it unless you made it seconds ago"),
        (key_for_other(NOW), "Ask the caller who requested a key for this user"),
        (self_key(NOW), "Confirm with the user that they made this key"),
    ],
)
def test_an_open_alert_ends_with_its_rules_next_step(record: dict[str, Any], step: str) -> None:
    _, blocks = render_alert(stored(finding_of(record)), NOW)

    (line,) = [t for t in mrkdwn_texts(blocks) if t.startswith("👉 Next: ")]
    assert line.removeprefix("👉 Next: ").startswith(step)
    assert blocks[-1]["type"] == "context"  # the footer: next step, then the event
    assert blocks[-1]["elements"][0]["text"] == line
    closed = stored(finding_of(record), EXPECTED_ROTATION, "U0CAROL", NOW)
    assert not [t for t in mrkdwn_texts(render_alert(closed, NOW)[1]) if "Next:" in t]


def test_the_decision_line_names_who_and_when() -> None:
    at = NOW + timedelta(minutes=13)
    expected = stored(finding_of(root_key(NOW)), EXPECTED_ROTATION, "U0CAROL", at)
    looking = stored(finding_of(root_key(NOW)), INVESTIGATING, "U0CAROL", at)

    assert (
        f"✅ *Expected rotation* — marked by <@U0CAROL> at {date_token(at, '{time}')}"
        in all_text(render_alert(expected, at)[1])
    )
    assert (
        f"🔎 *Investigating* — <@U0CAROL> since {date_token(at, '{time}')}; findings in the thread"
    ) in all_text(render_alert(looking, at)[1])
    assert triage_buttons("some_future_state", "e") == []


HOSTILE = st.text(max_size=4000) | st.sampled_from(
    ["<!channel>", "<@U123>", "<https://evil.example|x>", "*b* _i_ ~s~ `c`", "&lt;!here&gt;"]
)


@settings(max_examples=150, deadline=None)
@given(
    actor=HOSTILE,
    target=HOSTILE,
    agent=HOSTILE,
    ip=HOSTILE,
    arn=HOSTILE,
    error=st.none() | HOSTILE,
    actor_type=st.sampled_from(["IAMUser", "AssumedRole", "Root", "FederatedUser"]),
)
def test_any_record_text_renders_literal_and_within_limits(
    actor: str,
    target: str,
    agent: str,
    ip: str,
    arn: str,
    error: str | None,
    actor_type: str,
) -> None:
    base = finding_of(key_for_other(NOW))
    record = base.to_record() | {
        "actor_name": actor,
        "actor_type": actor_type,
        "actor_arn": arn,
        "target_user": target,
        "user_agent": agent,
        "source_ip": ip,
        "error_code": error,
        "access_key_id": None if error else base.event.access_key_id,
    }
    finding = stored(from_stored(record))  # as the store would read it back

    text, blocks = render_alert(finding, NOW)

    assert_valid(text, blocks)
    dumped = without_date_tokens(json.dumps(blocks, ensure_ascii=False) + text)
    for control in SLACK_CONTROL:
        assert control not in dumped
    for obj in mrkdwn_texts(blocks):
        assert obj.count("`") % 2 == 0  # every code span closed
        # Outside code spans only our own template remains: no stray formatting characters
        # beyond the bold title and field labels.
        assert "<" not in outside_code_spans(without_date_tokens(obj))
    for ch in "<>`*_~":
        assert ch not in text


# --------------------------------------------------------------------------- hunts


def test_a_hunt_of_500_findings_stays_within_slacks_limits_and_says_what_was_left_out() -> None:
    findings = [finding_of(root_key(NOW - timedelta(minutes=i))) for i in range(500)]

    text, blocks = render_hunt(hunt_result(findings))

    assert_valid(text, blocks)
    assert len(blocks) <= 50
    rows = [line for line in all_text(blocks).splitlines() if line.startswith("🚨 ")]
    assert len(rows) == 40  # the default page
    assert f"{500 - len(rows)} more not shown" in blocks[-1]["elements"][0]["text"]
    assert text.startswith("Hunted 1 account × 1 region, 2026-11-28 14:20 → 2026-11-29 14:20 UTC")
    assert "500 findings" in text


def test_a_hunt_packed_to_the_block_limit_counts_what_it_dropped() -> None:
    """All 500 rows asked for, with names that escape to five times their length: the
    50-block budget decides, and the count of rows left out is exact."""
    findings = [
        finding_of(key_for_other(NOW - timedelta(minutes=i), actor="&" * 64, user="<" * 64))
        for i in range(500)
    ]

    text, blocks = render_hunt(hunt_result(findings), max_rows=500)

    assert_valid(text, blocks)
    assert len(blocks) == 50  # header, 48 sections of rows, the "more" line
    rows = [line for line in all_text(blocks).splitlines() if line.startswith("🔴 ")]
    assert 0 < len(rows) < 500
    assert f"{500 - len(rows)} more not shown" in blocks[-1]["elements"][0]["text"]
    for block in blocks:
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= 3000


def test_a_hunt_says_which_targets_could_not_be_read() -> None:
    errors = [
        TargetError(Target(OTHER, REGION), "assume_role", "AccessDenied", "<!channel> no"),
        TargetError(Target("333333333333", REGION), "lookup", "Throttled", "still throttled"),
    ]

    text, blocks = render_hunt(hunt_result([], errors, accounts=3))

    assert text.endswith("; 2 targets could not be read")
    shown = all_text(blocks)
    assert f"⚠ `{OTHER}` `{REGION}`: assume_role failed: `AccessDenied` `&lt;!channel&gt; no`" in (
        shown
    )
    assert "0 findings" in text
    assert_valid(text, blocks)


def test_a_hunt_row_shows_status_self_and_failed_calls() -> None:
    mine = finding_of(self_key(NOW, user="dave"))
    failed = finding_of(
        r.create_access_key(
            r.iam_user(CALLER, "mallory"),
            CALLER,
            NOW - timedelta(minutes=1),
            user="bob",
            new_key=None,
            error=("AccessDenied", "no"),
        )
    )
    decided = Finding(mine.event, mine.severity, mine.reasons, EXPECTED_ROTATION, mine.target)

    _, blocks = render_hunt(hunt_result([decided, failed]))

    shown = all_text(blocks)
    assert "`dave` → (self)" in shown
    assert "expected rotation" in shown
    assert "`mallory` → `bob`  `123456789012`  (`AccessDenied`)  open" in shown


# --------------------------------------------------------------------------- burst, status, digest


def test_burst_summary_counts_per_severity_and_account() -> None:
    findings = [
        stored(finding_of(root_key(NOW))),
        stored(finding_of(key_for_other(NOW))),
        stored(finding_of(self_key(NOW, account=OTHER), Target(OTHER, REGION))),
    ]

    text, blocks = render_burst(findings)

    assert text == "🚨 3 new access keys in 2 accounts in the last poll — alerts are in the thread"
    shown = all_text(blocks)
    assert "critical 1 · high 1 · medium 1 · low 0 · info 0" in shown
    assert f"(per account: {CALLER} 2, {OTHER} 1)" in shown
    assert_valid(text, blocks)


def test_status_shows_each_target_and_what_is_pending() -> None:
    health = [
        TargetHealth(CALLER, REGION, NOW, NOW - timedelta(minutes=2), None, None, 0),
        TargetHealth(OTHER, REGION, None, None, "lookup: AccessDenied: <!channel>", NOW, 3),
    ]
    runs = [
        PollRun(NOW - timedelta(minutes=7), NOW - timedelta(minutes=7), True, False, 1, None),
        PollRun(NOW - timedelta(minutes=2), NOW - timedelta(minutes=2), False, False, 0, "x"),
    ]

    text, blocks = render_status(health, runs, 4, NOW, 5, scheduler_error="poll: boom")

    assert text == (
        "Poller: every 5 min, last success 7 min ago, 1 failed poll in 24 h, 4 posts pending"
    )
    shown = all_text(blocks)
    assert f"`{CALLER}` `{REGION}`: last read 2 min ago" in shown
    assert (
        f"`{OTHER}` `{REGION}`: last read never · ⚠ 3 failures: "
        "`lookup: AccessDenied: &lt;!channel&gt;`"
    ) in shown
    assert "⚠ last job error: `poll: boom`" in shown
    assert_valid(text, blocks)


def test_status_before_any_poll() -> None:
    text, blocks = render_status([], [], 0, NOW, 5)
    assert "last success never" in text
    assert "No account has been polled yet." in all_text(blocks)


def test_status_with_many_targets_says_how_many_it_left_out() -> None:
    health = [TargetHealth(f"{i:012d}", REGION, NOW, NOW, None, None, 0) for i in range(1, 61)]
    _, blocks = render_status(health, [], 0, NOW, 5)
    shown = all_text(blocks)
    assert shown.count(": last read 0 min ago") == 40
    assert "…and 20 more account/region pairs not shown" in shown


def test_digest_counts_by_severity_and_status_and_names_the_oldest_open() -> None:
    old = stored(
        finding_of(key_for_other(NOW - timedelta(hours=20), actor="alice", user="bob")),
        stored_at=NOW - timedelta(hours=19),
    )
    day = [
        old,
        stored(finding_of(root_key(NOW)), EXPECTED_ROTATION, "U0CAROL", NOW),
        stored(finding_of(self_key(NOW))),
    ]
    runs = [PollRun(NOW - timedelta(minutes=2), NOW - timedelta(minutes=2), True, True, 0, None)]

    text, blocks = render_digest(day, [old, day[2]], runs, 5, NOW)

    assert text == (
        "Yesterday: 3 new key events (critical 1 · high 1 · medium 1 · low 0); "
        "1 triaged, 2 still open"
    )
    shown = all_text(blocks)
    assert "Oldest open: `alice` → `bob` in `123456789012`, waiting 19 h (2 open in all)" in shown
    assert "Poller: every 5 min, last success 2 min ago, 0 failures in 24 h" in shown
    assert_valid(text, blocks)


def test_digest_names_the_accounts_it_could_not_read() -> None:
    health = [
        TargetHealth(CALLER, REGION, NOW, NOW, None, None, 0),
        TargetHealth(OTHER, REGION, None, None, "lookup: AccessDenied: <!channel>", NOW, 4),
    ]

    text, blocks = render_digest([], [], [], 5, NOW, health)

    assert text.endswith("; ⚠ 1 account/region pair could not be read")
    assert (
        f"⚠ could not read `{OTHER}` `{REGION}` (4 polls in a row): "
        "`lookup: AccessDenied: &lt;!channel&gt;`"
    ) in all_text(blocks)
    assert_valid(text, blocks)


def test_usage_lists_every_form_and_shows_the_problem_as_code() -> None:
    text, blocks = render_usage("unknown command '<!channel>'")

    assert text == "keyhunt usage"
    shown = all_text(blocks)
    assert shown.startswith("⚠ `unknown command '&lt;!channel&gt;'`")
    for form in ("last &lt;DUR&gt;", "since &lt;T&gt;", "key &lt;ACCESS_KEY_ID&gt;", "status"):
        assert form in shown
    assert_valid(text, blocks)


def test_usage_has_no_raw_angle_brackets() -> None:
    _, blocks = render_usage()
    assert "<" not in all_text(blocks)


# --------------------------------------------------------------------------- investigation


def test_investigation_lists_activity_bounded_with_iam_facts() -> None:
    key = "AKIAEXAMPLEKEY123456"
    creation = finding_of(key_for_other(NOW - timedelta(hours=2), key=key))
    activity = [
        ApiActivity(
            event_id=f"a{i}",
            event_time=NOW - timedelta(minutes=100 - i),
            event_source="s3.amazonaws.com",
            event_name="ListBuckets",
            region=REGION,
            account_id=CALLER,
            source_ip="<!channel>",
            user_agent=None,
            error_code="AccessDenied" if i == 0 else None,
        )
        for i in range(45)
    ]
    report = KeyReport(
        access_key_id=key,
        window=WINDOW,
        targets=[Target(CALLER, REGION)],
        creation=creation,
        last_use=KeyLastUse(key, "bob", NOW - timedelta(minutes=5), "s3", REGION),
        owner_keys=(KeyInfo(key, "Active", NOW), KeyInfo("AKIAOTHEROTHER001234", "Inactive", None)),
        activity=activity,
        errors=[TargetError(Target(OTHER, REGION), "lookup", "Throttled", "slow")],
    )

    text, blocks = render_investigation(report, NOW)

    assert text == "Investigation of AKIA…3456: 45 API calls since creation"
    shown = all_text(blocks)
    assert shown.count("`s3:ListBuckets`") == 30
    assert f"…and 15 more: `keyhunt key {key}`" in shown
    assert "⚠ `AccessDenied`" in shown
    assert "IAM: owner `bob` · last used 2026-11-29 14:15 UTC in `us-east-1` by `s3`" in shown
    assert "IAM says this key is Active, 0 min old" in shown
    assert "IAM says other key `AKIA…1234` is Inactive" in shown
    assert f"`{OTHER}` `{REGION}`: lookup failed" in shown
    assert "&lt;!channel&gt;" in shown
    assert_valid(text, blocks)


def test_code_neutralises_everything_slack_would_interpret() -> None:
    assert code("<@U1> & `x`\n*y*") == "`&lt;@U1&gt; &amp; ˋxˋ *y*`"
    assert code("") == "—"
    assert code(None) == "—"
    assert code("a\u202eb\u200dc") == "`a b c`"  # bidi override and zero-width joiner
    long = code("x" * 500, limit=50)
    assert len(long) == 52
    assert long.endswith("…`")
    assert re.fullmatch(r"`[^`]*`", code("`" * 10))


@pytest.mark.parametrize(
    ("reasons", "error", "expected"),
    [
        (["self_service"], None, "user created their own access key"),
        (
            ["self_service", "failed_attempt"],
            "LimitExceeded",
            "user tried to create their own access key",
        ),
        (["root_actor"], "AccessDenied", "root user tried to create an access key"),
        (["key_for_other_user"], "AccessDenied", "failed attempt to create a key for another user"),
        ([], None, "access key created"),
    ],
)
def test_headline_reads_right_for_failed_calls(
    reasons: list[str], error: str | None, expected: str
) -> None:
    # The alert's title names what happened by the rule that set the severity.
    base = finding_of(key_for_other(NOW))
    event = dataclasses.replace(base.event, error_code=error)
    finding = dataclasses.replace(base, event=event, reasons=tuple(reasons))

    _, blocks = render_alert(stored(finding), NOW)

    title = mrkdwn_texts(blocks)[0].splitlines()[0]
    assert title.endswith(f" — {expected}*")


# --------------------------------------------------------------------------- malformed records


def test_a_malformed_alert_says_what_could_not_be_read() -> None:
    record = key_for_other(NOW, actor="mallory", user="bob")
    record["userAgent"] = 1234
    record["requestParameters"] = ["bob"]
    finding = finding_of(record)
    assert "malformed" in finding.reasons

    text, blocks = render_alert(stored(finding), NOW)

    shown = all_text(blocks)
    assert (
        "⚠ keyhunt could not read: `userAgent` (number, expected a string) · "
        "`requestParameters` (list, expected an object)"
    ) in shown
    assert "part of the CloudTrail record could not be read" in shown  # the Why field
    assert text == (
        "🔴 HIGH  mallory created an access key for bob in 123456789012, us-east-1 "
        "(keyhunt could not read all of its record)"
    )
    assert_valid(text, blocks)


def test_an_alert_built_from_the_envelope_alone() -> None:
    key = new_key_id()
    event = parse_entry(
        {
            "EventId": "evt-unreadable-1",
            "EventName": "CreateAccessKey",
            "EventTime": NOW - timedelta(minutes=3),
            "Resources": [{"ResourceType": "AWS::IAM::AccessKey", "ResourceName": key}],
            "CloudTrailEvent": '{"eventVersion": "1.09", "eventName": "CreateAc',
        }
    )
    assert event is not None
    finding = classify(event, target=Target(CALLER, REGION))

    text, blocks = render_alert(stored(finding), NOW)

    assert text == (
        "🟠 MEDIUM  an unknown caller created an access key for an unknown user in "
        "123456789012, us-east-1 (keyhunt could not read all of its record)"
    )
    shown = all_text(blocks)
    assert "access key created; keyhunt could not read all of its record" in shown
    assert "⚠ keyhunt could not read: `CloudTrailEvent` (`not JSON: " in shown
    assert f"*New key*  `{key}`" in shown
    assert_valid(text, blocks)


@settings(max_examples=100, deadline=None)
@given(problems=st.lists(HOSTILE, max_size=30))
def test_any_problem_text_renders_inert_and_bounded(problems: list[str]) -> None:
    base = finding_of(key_for_other(NOW))
    record = base.to_record() | {"malformed_fields": problems, "reasons": ["malformed"]}
    text, blocks = render_alert(stored(from_stored(record)), NOW)

    assert_valid(text, blocks)
    if problems:
        (line,) = [t for t in mrkdwn_texts(blocks) if t.startswith("⚠ keyhunt could not read")]
        assert len(line) <= 5 * 220 + 100
        assert line.count("`") % 2 == 0
        outside = outside_code_spans(line)
        for ch in "<>*_~":
            assert ch not in outside.replace("⚠ keyhunt could not read: ", "")
        assert "\n" not in line


def test_a_hunt_row_shows_the_whole_key_id() -> None:
    key = new_key_id()
    long_key = "AKIA" + "Q" * 124  # IAM allows key IDs up to 128 characters
    findings = [
        finding_of(self_key(NOW, user="dave", key=key)),
        finding_of(self_key(NOW - timedelta(minutes=1), user="erin", key=long_key)),
    ]

    text, blocks = render_hunt(hunt_result(findings))

    shown = all_text(blocks)
    assert f"`dave` → (self)  `123456789012`  `{key}`  open" in shown
    assert f"`{long_key}`" in shown
    assert "…" not in shown
    assert_valid(text, blocks)


def test_a_hunt_of_1000_findings_with_long_key_ids_stays_within_slacks_limits() -> None:
    findings = [
        finding_of(self_key(NOW - timedelta(minutes=i), key="AKIA" + f"{i:0124d}"))
        for i in range(1000)
    ]

    text, blocks = render_hunt(hunt_result(findings), max_rows=1000)

    assert_valid(text, blocks)
    rows = [line for line in all_text(blocks).splitlines() if line.startswith("🟠 ")]
    assert 0 < len(rows) < 1000
    assert f"{1000 - len(rows)} more not shown" in blocks[-1]["elements"][0]["text"]
    assert all(re.search(r"`AKIA\d{124}`", row) for row in rows)


def test_a_hunt_marks_malformed_rows_and_counts_unreadable_records() -> None:
    record = self_key(NOW, user="dave")
    record["userAgent"] = 7
    result = hunt_result([finding_of(record)])
    result.stats.unreadable = 3

    text, blocks = render_hunt(result)

    shown = all_text(blocks)
    assert "`dave` → (self)" in shown
    assert "⚠ partly unreadable" in shown
    assert "⚠ 3 CloudTrail records could not be read" in shown
    assert text.endswith("; 3 CloudTrail records could not be read")
    assert_valid(text, blocks)


def test_status_and_digest_count_unreadable_records() -> None:
    runs = [
        PollRun(NOW - timedelta(minutes=7), NOW - timedelta(minutes=7), True, True, 1, None),
        PollRun(NOW - timedelta(minutes=2), NOW - timedelta(minutes=2), True, True, 0, None),
    ]
    runs = [dataclasses.replace(runs[0], unreadable=2), dataclasses.replace(runs[1], unreadable=1)]

    _, status_blocks = render_status([], runs, 0, NOW, 5)
    text, digest_blocks = render_digest([], [], runs, 5, NOW)

    assert "⚠ 3 CloudTrail records could not be read" in all_text(status_blocks)
    assert "⚠ 3 CloudTrail records could not be read" in all_text(digest_blocks)
    assert text.endswith("; ⚠ 3 CloudTrail records could not be read")
    # Nothing unreadable: nothing said.
    quiet = [dataclasses.replace(run, unreadable=0) for run in runs]
    assert "could not be read" not in all_text(render_status([], quiet, 0, NOW, 5)[1])
    assert "could not be read" not in render_digest([], [], quiet, 5, NOW)[0]


def test_investigation_says_what_each_matched_rule_is_and_gets_wrong() -> None:
    """The rule's title and false-positive note reach the on-call, in the Investigate reply."""
    from checks.rules import rule_by_id

    report = KeyReport(
        access_key_id="AKIAEXAMPLEKEY123456",
        window=WINDOW,
        targets=[Target(CALLER, REGION)],
        creation=None,
        last_use=None,
        owner_keys=None,
        activity=[],
        errors=[],
    )
    _, blocks = render_investigation(
        report, NOW, reasons=["key_for_other_user", "console", "suppressed"]
    )
    notes = [b for b in blocks if b["type"] == "context"]
    assert len(notes) == 1
    lines = [element["text"] for element in notes[0]["elements"]]
    other = rule_by_id("key_for_other_user")
    assert other is not None
    assert other.false_positives
    assert lines[0].startswith(f"ℹ️ About key_for_other_user: {other.title}.")
    assert other.false_positives[0] in lines[0]
    assert lines[1].startswith("ℹ️ About console:")
    assert len(lines) == 2  # `suppressed` is not a rule
    _, plain = render_investigation(report, NOW)
    assert not [b for b in plain if b["type"] == "context"]


def layout_rows(blocks: list[dict[str, Any]]) -> int:
    """Rows as Slack lays an alert out on a wide screen: a section's text lines, its fields
    two to a row, one row per actions or context block."""
    rows = 0
    for block in blocks:
        if block["type"] == "section":
            rows += block["text"]["text"].count("\n") + 1 if "text" in block else 0
            fields = block.get("fields", [])
            assert all("\n" not in f["text"] for f in fields), "a field is one line"
            rows += (len(fields) + 1) // 2
        else:
            rows += 1
    return rows


def test_a_typical_alert_is_about_eight_lines() -> None:
    """The short facts go in two columns, label and value on one line (issue 11)."""
    key = new_key_id()
    finding = replace(
        finding_of(key_for_other(NOW, actor="alice", user="bob", key=key)),
        user_keys=(KeyInfo(key, "Active", NOW),),
    )
    _, blocks = render_alert(stored(finding), NOW)
    assert layout_rows(blocks) <= 8
    _, failed = render_alert(stored(finding_of(mallory_denied())), NOW)
    assert layout_rows(failed) <= 9  # one more fact: the error
