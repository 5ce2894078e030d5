"""`keyhunt hunt` output as text, pure: the table, JSON lines and CSV of a HuntResult."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

from bot.terminal import format_csv, format_jsonl, format_table
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
    assert lines[0].endswith("PARTIAL: 1 CloudTrail record(s) could not be read")
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
