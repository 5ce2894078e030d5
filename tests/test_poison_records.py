"""No record can stop the pipeline: whatever one CloudTrailEvent holds, a poll stores and posts
every other finding, and the checkpoint moves on.

Today's failure this guards against: a record with a lone surrogate escape (valid JSON,
`"userAgent": "aws-cli/2 \\ud800"`) made `store.add_findings` raise UnicodeEncodeError on
every poll, so the checkpoint never moved and no other finding of that poll was alerted.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checks.model import Target
from tests.crashpoint import alerts_in_channel
from tests.slackbot import CALLER, CHANNEL, REGION, BotFactory, now_utc, root_key, self_key

TARGET = Target(CALLER, REGION)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
FIELDS = (
    "eventID",
    "eventTime",
    "eventName",
    "userIdentity",
    "userAgent",
    "sourceIPAddress",
    "requestParameters",
    "responseElements",
    "recipientAccountId",
    "awsRegion",
    "errorCode",
    "sessionCredentialFromConsole",
)


def _with_field(field: str, value: Any) -> str:
    record = root_key(now_utc() - timedelta(minutes=5))
    record[field] = value
    return json.dumps(record)


hostile_events = st.one_of(
    # any bytes, as LookupEvents would carry them (undecodable bytes become lone surrogates)
    st.binary(max_size=200).map(lambda b: b.decode("utf-8", "surrogateescape")),
    st.text(max_size=200),
    # a real record with one field replaced by any JSON value
    st.builds(_with_field, st.sampled_from(FIELDS), json_values),
    # lone surrogates where the store once choked on them
    st.sampled_from(FIELDS).map(lambda f: _with_field(f, "aws-cli/2 \ud800")),
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(raw=hostile_events)
def test_one_hostile_record_never_holds_back_the_others(make_bot: BotFactory, raw: str) -> None:
    make_bot.aws.clear_events()
    make_bot.slack.reset()
    db = make_bot.tmp_path / f"poison-{len(make_bot.bots)}.db"
    # Follow-ups (tests/test_followups.py) would add a rate-limited LookupEvents per key to
    # every second poll of 25 examples; what this test is about does not involve them.
    bot = make_bot(KEYHUNT_DATABASE_URL=f"sqlite:///{db}", KEYHUNT_FOLLOW_UP="false")
    now = now_utc()
    good = make_bot.seed(
        root_key(now - timedelta(minutes=9)),
        self_key(now - timedelta(minutes=8)),
        self_key(now - timedelta(minutes=7)),
    )
    make_bot.aws.add_raw_event(
        CALLER,
        REGION,
        event_id=f"hostile-{len(make_bot.bots)}",
        event_name="CreateAccessKey",
        event_time=now - timedelta(minutes=6),
        cloudtrail_event=raw,
    )

    outcome = bot.poll()

    assert outcome.ok
    assert outcome.failed_targets == []
    seen = alerts_in_channel(make_bot.slack, CHANNEL)
    assert all(seen[e] == 1 for e in good), seen
    assert all(count == 1 for count in seen.values()), seen
    checkpoint = bot.store.checkpoint(TARGET)
    assert checkpoint is not None
    assert checkpoint >= now - timedelta(seconds=1)
    assert bot.store.pending_count() == 0
    # and the next poll has nothing left to do
    again = bot.poll()
    assert again.new_findings == 0
    assert alerts_in_channel(make_bot.slack, CHANNEL) == seen


def test_a_lone_surrogate_is_stored_and_alerted_as_text_that_can_be_stored(
    make_bot: BotFactory,
) -> None:
    bot = make_bot()
    now = now_utc()
    record = self_key(now - timedelta(minutes=3))
    record["userAgent"] = "aws-cli/2 \ud800"
    # json.dumps writes the escape "\\ud800": valid JSON, which orjson refuses and json takes
    make_bot.aws.add_events(CALLER, REGION, [json.dumps(record)])
    poisoned = str(record["eventID"])
    (fine,) = make_bot.seed(root_key(now - timedelta(minutes=2)))

    outcome = bot.poll()

    assert outcome.ok
    assert alerts_in_channel(make_bot.slack, CHANNEL) == {poisoned: 1, fine: 1}
    stored = bot.store.get(poisoned)
    assert stored is not None
    agent = str(stored.finding.event.user_agent)
    agent.encode("utf-8")  # storable, postable text: the surrogate became U+FFFD
    assert "\ufffd" in agent
    assert "malformed" in stored.finding.reasons
