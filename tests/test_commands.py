"""The /keyhunt grammar (CONTRACT section 5), as pure text in, command or CommandError out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.commands import CommandError, Help, Hunt, KeyLookup, Status, parse_command
from checks.model import Severity


@pytest.mark.parametrize("text", ["", "   ", "help", "HELP", "Help", "usage", "?", " help "])
def test_help_forms(text: str) -> None:
    assert parse_command(text) == Help()


@pytest.mark.parametrize("text", ["status", "STATUS", "  status  "])
def test_status(text: str) -> None:
    assert parse_command(text) == Status()


def test_key_lookup() -> None:
    assert parse_command("key AKIAIOSFODNN7EXAMPLE") == KeyLookup("AKIAIOSFODNN7EXAMPLE")
    assert parse_command("KEY AKIAIOSFODNN7EXAMPLE") == KeyLookup("AKIAIOSFODNN7EXAMPLE")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("last 90m", timedelta(minutes=90)),
        ("last 24h", timedelta(hours=24)),
        ("last 7d", timedelta(days=7)),
        ("last 2w", timedelta(weeks=2)),
        ("last 90d", timedelta(days=90)),
        ("LAST 24h", timedelta(hours=24)),
    ],
)
def test_last_durations(text: str, expected: timedelta) -> None:
    assert parse_command(text) == Hunt(last=expected)


def test_last_with_every_filter_in_any_order_after_the_head() -> None:
    expected = Hunt(
        last=timedelta(hours=24),
        user="bob",
        actor="alice",
        account="123456789012",
        min_severity=Severity.HIGH,
    )
    assert (
        parse_command("last 24h user bob actor alice account 123456789012 severity high")
        == expected
    )
    assert (
        parse_command("last 24h severity HIGH account 123456789012 actor alice user bob")
        == expected
    )


def test_since_and_until() -> None:
    assert parse_command("since 2026-11-01") == Hunt(since=datetime(2026, 11, 1, tzinfo=UTC))
    assert parse_command("since 2026-11-01T10:00Z until 2026-11-02T10:30:00Z user bob") == Hunt(
        since=datetime(2026, 11, 1, 10, tzinfo=UTC),
        until=datetime(2026, 11, 2, 10, 30, tzinfo=UTC),
        user="bob",
    )


def test_an_offset_is_converted_to_utc_and_a_bare_time_is_utc() -> None:
    hunt = parse_command("since 2026-11-01T10:00+02:00 until 2026-11-01T12:00")
    assert hunt == Hunt(
        since=datetime(2026, 11, 1, 8, tzinfo=UTC), until=datetime(2026, 11, 1, 12, tzinfo=UTC)
    )


@pytest.mark.parametrize(
    "name",
    ["bob", "svc+deploy", "a.b@example.com", "x=y,z", "under_score", "dash-ed", "a" * 64],
)
def test_iam_user_names_are_accepted(name: str) -> None:
    assert parse_command(f"last 1d user {name}") == Hunt(last=timedelta(days=1), user=name)


def test_actor_takes_an_arn() -> None:
    arn = "arn:aws:sts::123456789012:assumed-role/Deployer/alice@example.com"
    assert parse_command(f"last 1d actor {arn}").actor == arn  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("help me", "`help` takes nothing after it"),
        ("status now", "`status` takes nothing after it"),
        ("key", "`key` takes exactly one access key ID"),
        ("key A B", "`key` takes exactly one access key ID"),
        ("key akiaiosfodnn7example", "bad access key ID"),
        ("key AKIA", "bad access key ID"),
        ("hunt", "unknown command 'hunt'"),
        ("until 2026-11-01", "unknown command 'until'"),
        ("user bob", "unknown command 'user'"),
        ("last", "'last' needs a value after it"),
        ("last 24h user", "'user' needs a value after it"),
        ("last 24", "bad duration '24'"),
        ("last 24H", "bad duration '24H'"),
        ("last 0h", "must be more than zero"),
        ("last 91d", "at most 90d"),
        ("last 14w", "at most 90d"),
        ("last -1d", "bad duration"),
        ("last 24h colour red", "unknown option 'colour'"),
        ("last 24h user a user b", "'user' given twice"),
        ("last 24h since 2026-11-01", "use either `last` or `since`/`until`, not both"),
        ("last 24h until 2026-11-01", "use either `last` or `since`/`until`, not both"),
        ("since 2026-11-01T10:00Z until", "'until' needs a value after it"),
        ("since yesterday", "bad time 'yesterday'"),
        ("since 2026-13-01", "bad time"),
        ("last 1d account 1234", "account '1234' is not valid"),
        ("last 1d account 1234567890123", "is not valid"),
        ("last 1d user jack;rm", "user 'jack;rm' is not valid"),
        ("last 1d user " + "a" * 65, "is not valid"),
        ("last 1d user <@U123>", "is not valid"),
        ("last 1d actor a*b", "actor 'a*b' is not valid"),
        ("last 1d severity urgent", "unknown severity 'urgent'"),
    ],
)
def test_errors_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(CommandError) as raised:
        parse_command(text)
    assert message in str(raised.value)


def test_a_long_hostile_value_is_cut_in_the_error_message() -> None:
    with pytest.raises(CommandError) as raised:
        parse_command("last 1d user " + "<" * 5000)
    assert len(str(raised.value)) < 200


@pytest.mark.parametrize(
    "text", ["since 0001-01-01T00:00+01:00", "since 2026-01-01 until 9999-12-31T23:59-01:00"]
)
def test_an_instant_out_of_range_after_utc_conversion_is_a_command_error(text: str) -> None:
    with pytest.raises(CommandError, match="outside the range of dates"):
        parse_command(text)


WORD = st.sampled_from(
    ["last", "since", "until", "user", "actor", "account", "severity", "key", "status", "help"]
)
VALUE = st.one_of(
    st.sampled_from(["24h", "90d", "91d", "2026-11-29", "2026-11-29T10:00Z", "high", "bob"]),
    st.text(max_size=15),
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.lists(st.one_of(WORD, VALUE), max_size=10).map(" ".join)))
def test_any_text_is_a_command_or_a_command_error(text: str) -> None:
    try:
        command = parse_command(text)
    except CommandError:
        return  # the ack shows its message with the usage
    assert isinstance(command, Help | Status | KeyLookup | Hunt)
