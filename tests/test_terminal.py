"""`keyhunt hunt` output as text, pure: the table, JSON lines and CSV of a HuntResult."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from bot.cli import wants_colour
from bot.terminal import SHRINK_ORDER, Progress, format_csv, format_jsonl, format_table
from checks.classify import classify
from checks.cloudtrail import parse_entry
from checks.model import Finding, HuntResult, HuntStats, Target, Window
from checks.record import FINDING_FIELDS
from tests.samples import fixture_case

NOW = datetime(2026, 11, 29, 21, 50, tzinfo=UTC)
TARGET = Target("111111111111", "us-east-1")


def result(findings: list[Finding], unreadable: int = 0) -> HuntResult:
    window = Window(NOW - timedelta(hours=24), NOW)
    return HuntResult(window, [TARGET], findings, [], HuntStats(unreadable=unreadable))


def envelope_only() -> Finding:
    event = parse_entry(
        {
            "EventId": "evt-1",
            "EventName": "CreateAccessKey",
            "EventTime": NOW - timedelta(minutes=2),
            "Resources": [
                {"ResourceType": "AWS::IAM::AccessKey", "ResourceName": "AKIA" + "Z" * 16}
            ],
            "CloudTrailEvent": "{truncated",
        }
    )
    assert event is not None
    return classify(event, target=TARGET)


def test_the_table_shows_whole_key_ids_and_malformed_findings() -> None:
    own = fixture_case("self_service/positive_path_user_self")
    mine = classify(own.event(), target=TARGET)
    key = own.record["responseElements"]["accessKey"]["accessKeyId"]

    table = format_table(result([mine, envelope_only()], unreadable=1))

    lines = table.splitlines()
    assert lines[0].endswith("PARTIAL: 1 CloudTrail record could not be read")
    (row,) = [line for line in lines if "bob" in line]
    assert key in row.split()
    (broken,) = [line for line in lines if "malformed" in line]
    assert "AKIA" + "Z" * 16 in broken.split()
    assert "MEDIUM" in broken
    assert "…" not in table


def test_jsonl_and_csv_carry_malformed_fields() -> None:
    finding = envelope_only()

    (record,) = [json.loads(line) for line in format_jsonl([finding]).splitlines()]
    (row,) = csv.DictReader(io.StringIO(format_csv([finding])))

    assert tuple(record) == FINDING_FIELDS
    assert record["malformed_fields"][0].startswith("CloudTrailEvent: not JSON")
    assert record["actor_type"] is None
    assert tuple(row) == FINDING_FIELDS
    assert row["malformed_fields"] == ";".join(record["malformed_fields"])
    assert row["reasons"] == "malformed"


def wide_result() -> HuntResult:
    own = classify(fixture_case("self_service/positive_path_user_self").event(), target=TARGET)
    sso = fixture_case("key_for_other_user/positive_sso_session_for_deploy_bot")
    other = classify(sso.event(), target=TARGET)
    return result([own, other, envelope_only()])


def test_the_table_shows_the_source_ip_and_self_as_slack_does() -> None:
    table = format_table(wide_result())

    header = table.splitlines()[2]
    names = ["TIME (UTC)", "SEVERITY", "WHO → FOR WHOM", "ACCOUNT", "REGION", "SOURCE IP", "KEY"]
    places = [header.index(name) for name in names]
    assert places == sorted(places)
    assert "198.51.100." in table or "203.0.113." in table  # the fixtures' documentation IPs
    (own,) = [line for line in table.splitlines() if "(self)" in line]
    assert "→ (self)" in own


def test_an_account_name_gives_way_before_its_id() -> None:
    from dataclasses import replace

    named = result([replace(f, account_name="production-payments") for f in wide_result().findings])
    assert "production-payments (" in format_table(named, width=None)
    narrow = format_table(named, width=80)
    assert all(len(line) <= 80 for line in narrow.splitlines()[1:])
    rows = [line for line in narrow.splitlines()[3:] if line.startswith("20")]
    assert len(rows) == 3
    assert all(re.search(r"  \d{12}  ", row) and "production" not in row for row in rows)


def test_piped_the_table_is_never_shortened() -> None:
    table = format_table(wide_result(), width=None)

    assert "…" not in table
    assert "self_service" in table


@pytest.mark.parametrize("width", [80, 100, 120])
def test_on_a_terminal_every_row_fits_and_what_gives_way_goes_in_order(width: int) -> None:
    full = format_table(wide_result())
    table = format_table(wide_result(), width=width)

    lines = table.splitlines()
    assert lines[0] == full.splitlines()[0]  # the summary is never cut
    assert all(len(line) <= width for line in lines[1:]), [len(line) for line in lines]
    header = lines[2]
    # Time, severity and account always stay.
    for column in ("TIME (UTC)", "SEVERITY", "ACCOUNT", "KEY"):
        assert column in header
    kept = [name for name, _ in SHRINK_ORDER if name in header]
    dropped = [name for name, _ in SHRINK_ORDER if name not in header]
    if dropped:  # a column only goes once every one before it in the order has gone
        assert SHRINK_ORDER[: len(dropped)] == tuple(o for o in SHRINK_ORDER if o[0] in dropped)
    assert kept == [name for name, _ in SHRINK_ORDER[len(dropped) :]]


def test_at_80_columns_the_key_is_shown_short_and_still_names_its_ends() -> None:
    table = format_table(wide_result(), width=80)

    assert "AKIA…ZZZZ" in table
    assert "REASONS" not in table


@pytest.mark.parametrize(
    ("env", "colour"),
    [({}, True), ({"NO_COLOR": "1"}, False), ({"NO_COLOR": ""}, True), ({"TERM": "dumb"}, False)],
)
def test_colour_honours_no_color_and_dumb_terminals(env: dict[str, str], colour: bool) -> None:
    assert wants_colour(env) is colour


def test_progress_shows_only_after_a_while_and_wipes_itself() -> None:
    stream = io.StringIO()
    now = [0.0]
    progress = Progress(stream, after=2.0, clock=lambda: now[0])

    progress.target_done(TARGET, HuntStats(lookup_calls=3), 3)  # quick: nothing shown
    assert stream.getvalue() == ""
    now[0] = 2.5
    progress.target_done(TARGET, HuntStats(lookup_calls=2, throttled=1), 3)
    assert stream.getvalue().endswith("hunting: 2/3 targets · 5 pages · 1 throttled")
    progress.close()

    assert stream.getvalue().endswith("\r\033[K")  # the line is wiped before the answer
    progress.close()  # twice is harmless
    assert stream.getvalue().count("\r\033[K") == 2


def test_a_quick_hunt_never_shows_progress() -> None:
    stream = io.StringIO()
    progress = Progress(stream, after=2.0, clock=lambda: 0.0)
    progress.target_done(TARGET, HuntStats(), 1)
    progress.close()
    assert stream.getvalue() == ""


def test_the_key_report_labels_what_iam_says() -> None:
    """A key's creation date is not when it became Active: the report says 'created'."""
    from bot.terminal import format_key_report
    from checks.iam import KeyLastUse
    from checks.investigate import KeyReport
    from checks.model import KeyInfo

    key, made = "AKIAEXAMPLENEWKEY002", datetime(2026, 11, 29, 10, 45, 7, tzinfo=UTC)
    report = KeyReport(
        access_key_id=key,
        window=Window(made - timedelta(days=1), made + timedelta(days=1)),
        targets=[Target("111111111111", "us-east-1")],
        last_use=KeyLastUse(key, "bob", made + timedelta(minutes=9), "s3", "us-east-1"),
        owner_keys=(KeyInfo(key, "Active", made),),
    )
    shown = format_key_report(report, made + timedelta(hours=2))
    assert "IAM: owner bob; last used 2026-11-29T10:54:07Z in us-east-1 by s3" in shown
    assert "key AKIA…Y002 Active, created 2026-11-29T10:45:07Z (this key)" in shown
    assert "since" not in shown
